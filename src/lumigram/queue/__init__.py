"""Getting job ids to workers. In-process by default; a Redis-backed task queue in scale-out."""
