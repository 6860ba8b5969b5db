package store

// MergeOnly makes s store new series and their first statuses through the
// staged, merged path only.
func MergeOnly(s *Store) { s.mergeOnly = true }
