package exporter

// SetPieceSize sets how many positions of a family are rendered at once.
func (e *Exporter) SetPieceSize(n int) { e.chunkSize = n }
