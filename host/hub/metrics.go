package hub

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahub/wahub/host/store"
)

// stateCollector reads the hub's state at scrape time: what is in the
// store and the plugins' health, which no counter in the hot path knows.
type stateCollector struct {
	h *Hub

	delivered, pending, retrying, dead, lag *prometheus.Desc
	restarts, up, syncAge, outbox           *prometheus.Desc
	// leases and leader are this hub's share of the cluster's work, by
	// node: the store-wide figures above are the same on every hub.
	leases, leader *prometheus.Desc
}

func newStateCollector(h *Hub) *stateCollector {
	c := []string{"connector"}
	return &stateCollector{
		h:         h,
		delivered: prometheus.NewDesc("wahub_connector_delivered", "Events delivered to the connector (all time).", c, nil),
		pending:   prometheus.NewDesc("wahub_connector_pending", "Events waiting for the connector, retrying ones included.", c, nil),
		retrying:  prometheus.NewDesc("wahub_connector_retrying", "Events waiting for a retry after a failed attempt.", c, nil),
		dead:      prometheus.NewDesc("wahub_connector_dead_letters", "Events whose delivery gave up, waiting for a replay.", c, nil),
		lag:       prometheus.NewDesc("wahub_connector_lag_seconds", "Age of the oldest event waiting for the connector.", c, nil),
		restarts:  prometheus.NewDesc("wahub_plugin_restarts", "Times the connector's plugin was restarted after it crashed.", c, nil),
		up:        prometheus.NewDesc("wahub_plugin_up", "1 while the connector's plugin runs.", c, nil),
		syncAge:   prometheus.NewDesc("wahub_sync_cursor_age_seconds", "Time since the connector's contact sync last stored a page.", c, nil),
		outbox:    prometheus.NewDesc("wahub_outbox_messages", "Outbound messages by state.", []string{"state"}, nil),
		leases: prometheus.NewDesc("wahub_cluster_leases", "Leases this hub holds (delivery partitions and the leader lease); PostgreSQL only.",
			[]string{"node"}, nil),
		leader: prometheus.NewDesc("wahub_cluster_leader", "1 while this hub runs the periodic jobs and sends the outbox; PostgreSQL only.",
			[]string{"node"}, nil),
	}
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.delivered, s.pending, s.retrying, s.dead, s.lag, s.restarts, s.up, s.syncAge, s.outbox, s.leases, s.leader} {
		ch <- d
	}
}

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := s.h.clock.Now()
	if counts, err := s.h.store.ConnectorCounts(ctx); err == nil {
		// Every configured connector has its series from the start, at 0
		// until it has work: an absent series alerts no one.
		for _, sp := range s.h.specs {
			if counts[sp.Name] == nil {
				counts[sp.Name] = &store.ConnectorCounts{}
			}
		}
		for name, c := range counts {
			ch <- prometheus.MustNewConstMetric(s.delivered, prometheus.CounterValue, float64(c.Delivered), name)
			ch <- prometheus.MustNewConstMetric(s.pending, prometheus.GaugeValue, float64(c.Pending), name)
			ch <- prometheus.MustNewConstMetric(s.retrying, prometheus.GaugeValue, float64(c.Retrying), name)
			ch <- prometheus.MustNewConstMetric(s.dead, prometheus.GaugeValue, float64(c.Dead), name)
			lag := 0.0
			if c.OldestPending != nil {
				lag = max(now.Sub(*c.OldestPending).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(s.lag, prometheus.GaugeValue, lag, name)
		}
	}
	for _, st := range s.h.sup.Statuses() {
		ch <- prometheus.MustNewConstMetric(s.restarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
		up := 0.0
		if st.State == "running" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, up, st.Name)
	}
	for _, st := range s.h.sup.Statuses() {
		if st.SyncInterval <= 0 {
			continue
		}
		if ss, err := s.h.store.SyncCursor(ctx, st.Name); err == nil && !ss.At.IsZero() {
			ch <- prometheus.MustNewConstMetric(s.syncAge, prometheus.GaugeValue, now.Sub(ss.At).Seconds(), st.Name)
		}
	}
	if c := s.h.cluster; c != nil {
		leader := 0.0
		if c.IsLeader() {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(s.leases, prometheus.GaugeValue, float64(c.Held()), c.ID())
		ch <- prometheus.MustNewConstMetric(s.leader, prometheus.GaugeValue, leader, c.ID())
	}
	if oc, err := s.h.store.OutboundCounts(ctx); err == nil {
		for state, n := range oc {
			ch <- prometheus.MustNewConstMetric(s.outbox, prometheus.GaugeValue, float64(n), state)
		}
	}
}
