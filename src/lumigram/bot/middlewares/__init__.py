"""Update-level middlewares, in the order the dispatcher runs them:
throttling -> database session -> user registration and ban check -> i18n."""
