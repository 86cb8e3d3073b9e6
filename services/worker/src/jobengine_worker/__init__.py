"""jobengine worker: claims jobs from Redis in batches and runs them in a long-lived executor process."""
