package media

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahub/wahub/sdk"
)

// Metrics are the media store's Prometheus series; a nil *Metrics records
// nothing.
type Metrics struct {
	fetches  *prometheus.CounterVec
	duration prometheus.Histogram
	bytes    *prometheus.CounterVec
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_media_fetches_total",
			Help: "Attempts to fetch inbound media from WhatsApp, by outcome (available, unavailable, pending: retried later).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wahub_media_fetch_seconds",
			Help:    "Time one fetch attempt took, resolve and download.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_media_stored_bytes_total",
			Help: "Bytes put into the media store, by origin (inbound, upload).",
		}, []string{"origin"}),
	}
	reg.MustRegister(m.fetches, m.duration, m.bytes)
	return m
}

// SetMetrics makes the store record into m.
func (s *Store) SetMetrics(m *Metrics) { s.metrics = m }

func (m *Metrics) fetched(state sdk.MediaState, d time.Duration) {
	if m == nil {
		return
	}
	m.fetches.WithLabelValues(string(state)).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *Metrics) stored(origin string, n int64) {
	if m == nil {
		return
	}
	m.bytes.WithLabelValues(origin).Add(float64(n))
}

// filesCollector reports how many files the store knows, by state, at
// each scrape: a growing pending count is a fetcher that cannot keep up or
// a Graph API that refuses.
type filesCollector struct {
	s    *Store
	desc *prometheus.Desc
}

// RegisterFiles adds wahub_media_files{state} to reg.
func (s *Store) RegisterFiles(reg prometheus.Registerer) {
	reg.MustRegister(&filesCollector{s: s, desc: prometheus.NewDesc("wahub_media_files",
		"Files the media store knows, by state (pending: not fetched yet).", []string{"state"}, nil)})
}

func (c *filesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *filesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.s.records.MediaStats(ctx)
	if err != nil {
		return
	}
	for _, st := range []sdk.MediaState{sdk.MediaPending, sdk.MediaAvailable, sdk.MediaUnavailable} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}
