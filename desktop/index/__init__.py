"""The writer and its invariants: scanning folders, chunking, the LanceDB store, the indexer's
write order, the data dir's state and writer lock, live sync and the watcher."""
