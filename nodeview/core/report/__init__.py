"""Reports of a detection: the annotated PNG pages and their JSON sidecar (:mod:`.render`)."""
