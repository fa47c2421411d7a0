package redis

// ownKeys returns the keys of the lease's extend and TTL scripts: the key
// that holds the lease, alone. Those scripts read nothing else, and a key
// they were given without reading it (a read lease's writer intents, which
// its release needs) makes them multi-key: while its slot migrates on a
// Cluster, a multi-key script that finds one of its keys missing on the
// master it reaches is refused with TRYAGAIN, so every renewal of a read
// lease failed for the length of a migration when no writer waited.
func (l *lock) ownKeys() []string { return l.keys[:1] }
