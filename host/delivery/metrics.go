package delivery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahub/wahub/host/store"
)

// Metrics are the delivery series on /metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	outcomes  *prometheus.CounterVec
	batchTime *prometheus.HistogramVec
	rateWaits *prometheus.CounterVec
}

// NewMetrics registers the delivery series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_delivery_attempts_total",
			Help: "Delivery attempts by connector, outcome (delivered, skipped, retry, failed, error) and resulting state.",
		}, []string{"connector", "outcome", "state"}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wahub_delivery_batch_seconds",
			Help:    "Time a connector plugin took to answer a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"connector"}),
		rateWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_delivery_rate_limit_wait_seconds_total",
			Help: "Time workers waited for a connector's rate limit.",
		}, []string{"connector"}),
	}
	reg.MustRegister(m.outcomes, m.batchTime, m.rateWaits)
	return m
}

func (m *Metrics) batch(connector string, took time.Duration, attempts []store.Attempt) {
	if m == nil {
		return
	}
	m.batchTime.WithLabelValues(connector).Observe(took.Seconds())
	for _, a := range attempts {
		m.outcomes.WithLabelValues(connector, string(a.Outcome), a.State).Inc()
	}
}

func (m *Metrics) rateWait(connector string, d time.Duration) {
	if m == nil {
		return
	}
	m.rateWaits.WithLabelValues(connector).Add(d.Seconds())
}
