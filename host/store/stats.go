package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Stats is what GET /api/v1/stats and `wahub stats` show.
type Stats struct {
	Since   time.Time `json:"since"`
	Inbound struct {
		ByType map[string]int64 `json:"by_type"`
		ByTeam map[string]int64 `json:"by_team"`
	} `json:"inbound"`
	Outbound struct {
		ByState map[string]int64 `json:"by_state"`
		// Rates are shares of the messages Meta accepted.
		DeliveredRate float64          `json:"delivered_rate"`
		ReadRate      float64          `json:"read_rate"`
		FailedRate    float64          `json:"failed_rate"`
		ByErrorCode   map[string]int64 `json:"failed_by_code,omitempty"`
	} `json:"outbound"`
	Connectors map[string]ConnectorStats `json:"connectors"`
	// FirstResponse is, per team, the median time from a conversation's
	// first customer message in the period to the first message sent back.
	FirstResponse map[string]Duration `json:"median_first_response"`
}

// ConnectorStats is one connector's throughput and backlog.
type ConnectorStats struct {
	DeliveredSince int64 `json:"delivered_since"`
	// PerMinute is the delivery rate over the last PerMinuteWindow (the
	// period's end, at most RateWindow long): a rate averaged over a day
	// would hide a connector that has just stopped.
	PerMinute       float64  `json:"per_minute"`
	PerMinuteWindow Duration `json:"per_minute_window"`
	ConnectorCounts
	Errors int64 `json:"failed_attempts_since"`
}

// Duration marshals as a Go duration string ("1m30s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).Round(time.Second).String() + `"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes, for the admin API's clients.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration %s: want a string such as \"1m30s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// RateWindow is how far back Stats measures each connector's current
// delivery rate.
const RateWindow = 5 * time.Minute

// maxStatsEvents bounds the first-response scan.
const maxStatsEvents = 200_000

// Stats computes the figures since a time.
func (s *Store) Stats(ctx context.Context, since time.Time) (Stats, error) {
	var st Stats
	st.Since = since.UTC()
	ms := since.UnixMilli()
	st.Inbound.ByType, st.Inbound.ByTeam = map[string]int64{}, map[string]int64{}
	// The period's range of events_received_type holds all three columns:
	// no row of the log is read.
	rows, err := s.reader.QueryContext(ctx, `SELECT type, COALESCE(json_extract(route, '$.team'), ''), COUNT(*) FROM events INDEXED BY events_received_type
		WHERE received_at >= ? AND type NOT IN ('message.sent') AND type NOT LIKE 'status.%' GROUP BY 1, 2`, ms)
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	for rows.Next() {
		var typ, team string
		var n int64
		if err := rows.Scan(&typ, &team, &n); err != nil {
			rows.Close()
			return st, err
		}
		st.Inbound.ByType[typ] += n
		if team == "" {
			team = "(none)"
		}
		if isInbound(sdk.EventType(typ)) {
			st.Inbound.ByTeam[team] += n
		}
	}
	rows.Close()

	st.Outbound.ByState = map[string]int64{}
	st.Outbound.ByErrorCode = map[string]int64{}
	rows, err = s.reader.QueryContext(ctx, `SELECT state, error_code, COUNT(*) FROM outbox WHERE created_at >= ? GROUP BY 1, 2`, ms)
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	for rows.Next() {
		var state, code string
		var n int64
		if err := rows.Scan(&state, &code, &n); err != nil {
			rows.Close()
			return st, err
		}
		st.Outbound.ByState[state] += n
		if state == OutFailed && code != "" {
			st.Outbound.ByErrorCode[code] += n
		}
	}
	rows.Close()
	o := st.Outbound.ByState
	if accepted := o[OutAccepted] + o[OutSent] + o[OutDelivered] + o[OutRead] + o[OutFailed]; accepted > 0 {
		st.Outbound.DeliveredRate = float64(o[OutDelivered]+o[OutRead]) / float64(accepted)
		st.Outbound.ReadRate = float64(o[OutRead]) / float64(accepted)
		st.Outbound.FailedRate = float64(o[OutFailed]) / float64(accepted)
	}

	counts, err := s.ConnectorCounts(ctx)
	if err != nil {
		return st, err
	}
	st.Connectors = map[string]ConnectorStats{}
	for name, c := range counts {
		st.Connectors[name] = ConnectorStats{ConnectorCounts: *c}
	}
	now := s.now()
	window := min(max(now.Sub(since), time.Second), RateWindow)
	for name, c := range st.Connectors {
		c.PerMinuteWindow = Duration(window)
		st.Connectors[name] = c
	}
	// Deliveries settled in the period come from deliveries_settled, the
	// failed attempts from delivery_attempts_at: two index ranges instead
	// of a scan of every delivery. recent counts those of the rate window.
	rows, err = s.reader.QueryContext(ctx, `SELECT connector, SUM(delivered), SUM(recent), SUM(errors) FROM (
			SELECT connector, COUNT(*) AS delivered, SUM(CASE WHEN updated_at >= ?2 THEN 1 ELSE 0 END) AS recent, 0 AS errors FROM deliveries INDEXED BY deliveries_settled
				WHERE state = 'delivered' AND updated_at >= ?1 GROUP BY connector
			UNION ALL
			SELECT d.connector, 0, 0, COUNT(*) FROM delivery_attempts a INDEXED BY delivery_attempts_at JOIN deliveries d ON d.id = a.delivery_id
				WHERE a.at >= ?1 AND a.outcome IN ('retry', 'failed', 'error') GROUP BY d.connector) AS per_connector
		GROUP BY connector`, ms, now.Add(-window).UnixMilli())
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	for rows.Next() {
		var name string
		var delivered, recent, errs sql.NullInt64
		if err := rows.Scan(&name, &delivered, &recent, &errs); err != nil {
			rows.Close()
			return st, err
		}
		c := st.Connectors[name]
		c.DeliveredSince, c.Errors = delivered.Int64, errs.Int64
		c.PerMinute = float64(recent.Int64) / window.Minutes()
		c.PerMinuteWindow = Duration(window)
		st.Connectors[name] = c
	}
	rows.Close()

	st.FirstResponse, err = s.firstResponse(ctx, ms)
	return st, err
}

func (s *Store) firstResponse(ctx context.Context, since int64) (map[string]Duration, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT conversation_id, type, occurred_at, COALESCE(json_extract(route, '$.team'), '') FROM events INDEXED BY events_received_type
		WHERE received_at >= ? AND conversation_id IS NOT NULL AND type IN ('message.received', 'button.clicked', 'message.sent')
		ORDER BY seq LIMIT ?`, since, maxStatsEvents)
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	defer rows.Close()
	type open struct {
		at   int64
		team string
		done bool
	}
	convs := map[string]*open{}
	byTeam := map[string][]time.Duration{}
	for rows.Next() {
		var conv, team string
		var typ sdk.EventType
		var at int64
		if err := rows.Scan(&conv, &typ, &at, &team); err != nil {
			return nil, err
		}
		c := convs[conv]
		switch {
		case typ != sdk.TypeMessageSent && c == nil:
			convs[conv] = &open{at: at, team: team}
		case typ == sdk.TypeMessageSent && c != nil && !c.done:
			c.done = true
			t := c.team
			if t == "" {
				t = "(none)"
			}
			byTeam[t] = append(byTeam[t], time.Duration(at-c.at)*time.Millisecond)
		}
	}
	out := map[string]Duration{}
	for team, ds := range byTeam {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		out[team] = Duration(ds[len(ds)/2])
	}
	return out, rows.Err()
}
