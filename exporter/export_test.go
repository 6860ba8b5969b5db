package exporter

import "github.com/carewatch/carewatch/kpi"

// SetPieceSize sets how many positions of a family are rendered at once.
func (e *Exporter) SetPieceSize(n int) { e.chunkSize = n }

// NewSnapshotPaged is NewSnapshot with the KPIs' series in pages of
// 1<<shift states.
func NewSnapshotPaged(c kpi.Catalogue, series []kpi.SeriesState, health []kpi.CollectorHealth, shift uint8) *Snapshot {
	return newSnapshot(c, series, health, shift)
}
