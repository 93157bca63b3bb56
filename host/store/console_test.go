package store

import (
	"context"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// The console's queries and the stats they share an index with, over a
// small log whose every figure is known.
func TestConsoleQueriesAndStats(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m-30) * time.Minute) }
	evs := []sdk.Event{
		textEvent("a1", "5511900000001", "", "Ana Souza", at(1)), // billing, retried then delivered
		textEvent("a2", "5511900000001", "", "Ana Souza", at(2)), // billing, delivered
		textEvent("b1", "5521900000002", "", "Bruno", at(3)),     // support, dead
		{ID: "s1", Type: sdk.TypeMessageSent, OccurredAt: at(7), ReceivedAt: at(7),
			Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "5511900000001"},
			Message: &sdk.Message{ID: "wamid.out1", Type: "text", Text: "oi"}, Outbound: &sdk.Outbound{ID: "msg_1"}},
		{ID: "st1", Type: sdk.TypeStatusDelivered, OccurredAt: at(8), ReceivedAt: at(8),
			Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "5511900000001"},
			Status: &sdk.Status{MessageID: "wamid.out1", Status: "delivered"}},
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	decide := func(ev *sdk.Event, _ RouteState) Decision {
		team := "billing"
		if ev.Contact != nil && ev.Contact.WAID == "5521900000002" {
			team = "support"
		}
		if ev.Type == sdk.TypeStatusDelivered {
			return Decision{}
		}
		return Decision{Route: &sdk.Route{Rule: "r", Team: team, Connectors: []string{"hook"}}, Team: team, Connectors: []string{"hook"}}
	}
	if _, err := s.Dispatch(ctx, 100, decide); err != nil {
		t.Fatal(err)
	}
	due, err := s.Due(ctx, "hook", t0, 100)
	if err != nil || len(due) != 4 {
		t.Fatalf("due %d, %v; want 4", len(due), err)
	}
	byEvent := map[string]Delivery{}
	for _, d := range due {
		byEvent[d.EventID] = d
	}
	rec := func(a ...Attempt) {
		t.Helper()
		if err := s.RecordAttempts(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	rec(Attempt{DeliveryID: byEvent["a1"].ID, At: t0, Duration: time.Millisecond, Outcome: "retry", Error: "503", State: StatePending, NextAt: t0},
		Attempt{DeliveryID: byEvent["b1"].ID, At: t0, Outcome: "failed", Error: "400 bad", State: StateDead})
	rec(Attempt{DeliveryID: byEvent["a1"].ID, At: t0, Outcome: "delivered", State: StateDelivered},
		Attempt{DeliveryID: byEvent["a2"].ID, At: t0, Outcome: "delivered", State: StateDelivered},
		Attempt{DeliveryID: byEvent["s1"].ID, At: t0, Outcome: "delivered", State: StateDelivered})

	// The counts the triggers keep agree with counting the rows, through
	// every kind of change: inserts (dispatch), state updates (attempts),
	// a replay, and the deletes of pruning.
	checkCounts := func(what string, want map[string]int64) {
		t.Helper()
		cc, err := s.ConnectorCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := cc["hook"]
		if c == nil {
			c = &ConnectorCounts{}
		}
		got := map[string]int64{StateDelivered: c.Delivered, StateDead: c.Dead, StatePending: c.Pending, StateSkipped: c.Skipped, "retrying": c.Retrying}
		rows, err := s.reader.QueryContext(ctx, `SELECT state, COUNT(*) FROM deliveries WHERE connector = 'hook' GROUP BY state`)
		if err != nil {
			t.Fatal(err)
		}
		counted := map[string]int64{}
		for rows.Next() {
			var st string
			var n int64
			rows.Scan(&st, &n)
			counted[st] = n
		}
		rows.Close()
		for _, st := range []string{StateDelivered, StateDead, StatePending, StateSkipped} {
			if got[st] != counted[st] || got[st] != want[st] {
				t.Errorf("%s: %s = %d, rows say %d, want %d", what, st, got[st], counted[st], want[st])
			}
		}
		if got["retrying"] != want["retrying"] {
			t.Errorf("%s: retrying %d, want %d", what, got["retrying"], want["retrying"])
		}
	}
	checkCounts("after the attempts", map[string]int64{StateDelivered: 3, StateDead: 1})

	st, err := s.Stats(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Inbound.ByTeam["billing"] != 2 || st.Inbound.ByTeam["support"] != 1 || st.Inbound.ByType[string(sdk.TypeMessageReceived)] != 3 {
		t.Errorf("inbound %+v", st.Inbound)
	}
	if c := st.Connectors["hook"]; c.DeliveredSince != 3 || c.Errors != 2 || c.Delivered != 3 || c.Dead != 1 {
		t.Errorf("hook %+v: want 3 delivered in the period, 2 failed attempts, 1 dead", c)
	}
	if fr := time.Duration(st.FirstResponse["billing"]); fr != 6*time.Minute {
		t.Errorf("billing first response %s, want 6m (01 → 07)", fr)
	}
	if _, ok := st.FirstResponse["support"]; ok {
		t.Error("support never answered, yet has a first response")
	}
	if later, _ := s.Stats(ctx, t0.Add(time.Minute)); len(later.Inbound.ByTeam) != 0 || later.Connectors["hook"].DeliveredSince != 0 {
		t.Errorf("a period after everything counts %+v", later)
	}

	sr, err := s.Series(ctx, t0.Add(-30*time.Minute), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Inbound) != 7 || sr.Inbound[0] != 3 || sr.Outbound[1] != 1 || sr.Delivered["hook"][6] != 3 || sr.Retries[6] != 1 || sr.Failed[6] != 1 {
		t.Errorf("series %+v", sr)
	}

	conv := ConversationID("pn1", "5511900000001")
	thread, err := s.ConversationEvents(ctx, conv, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range thread {
		ids = append(ids, ev.ID)
	}
	if len(ids) != 3 || ids[0] != "a1" || ids[2] != "s1" || thread[0].Route == nil || thread[0].Route.Team != "billing" {
		t.Errorf("thread %v: want a1 a2 s1, oldest first, with routes and without the status", ids)
	}
	if older, _ := s.ConversationEvents(ctx, conv, thread[1].Seq, 100); len(older) != 1 || older[0].ID != "a1" {
		t.Errorf("before a2: %v", older)
	}
	states, err := s.DeliveryStates(ctx, []int64{thread[0].Seq, evs[2].Seq})
	if err != nil {
		t.Fatal(err)
	}
	if d := states[thread[0].Seq]; len(d) != 1 || d[0].State != StateDelivered || d[0].Attempts != 2 {
		t.Errorf("a1's deliveries %+v", d)
	}
	if d := states[evs[2].Seq]; len(d) != 1 || d[0].State != StateDead || d[0].LastError != "400 bad" {
		t.Errorf("b1's deliveries %+v", d)
	}

	for _, tt := range []struct {
		query string
		want  int
	}{{"", 2}, {"Souza", 1}, {"2190000", 1}, {"bruno", 1}, {"%", 0}, {"nobody", 0}} {
		got, err := s.RecentConversations(ctx, tt.query, 10)
		if err != nil || len(got) != tt.want {
			t.Errorf("conversations %q: %d (%v), want %d", tt.query, len(got), err, tt.want)
		}
	}
	if c, err := s.ConversationOf(ctx, conv); err != nil || c.Name != "Ana Souza" || c.Team != "billing" {
		t.Errorf("conversation %+v, %v", c, err)
	}
	if _, err := s.ConversationOf(ctx, "conv_nope"); err != ErrNotFound {
		t.Errorf("unknown conversation: %v", err)
	}

	if n, err := s.Replay(ctx, "hook", nil); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	checkCounts("after the replay", map[string]int64{StateDelivered: 3, StatePending: 1})
	rec(Attempt{DeliveryID: byEvent["b1"].ID, At: t0, Outcome: "retry", Error: "503", State: StatePending, NextAt: t0})
	checkCounts("retrying", map[string]int64{StateDelivered: 3, StatePending: 1, "retrying": 1})
	rec(Attempt{DeliveryID: byEvent["b1"].ID, At: t0, Outcome: "delivered", State: StateDelivered})
	checkCounts("all delivered", map[string]int64{StateDelivered: 4})
	if n, err := s.Prune(ctx, t0.Add(time.Hour)); err != nil || n == 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	checkCounts("after pruning", map[string]int64{})
}

func TestOutboundListsAndStuck(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, to := range []string{"5511900000001", "5511900000002"} {
		if _, _, err := s.Enqueue(ctx, "api", sdk.OutboundMessage{To: to, PhoneNumberID: "pn1", Text: "oi " + to}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.OutboundList(ctx, OutboundFilter{})
	if err != nil || len(all) != 2 || all[0].Request.Text == "" {
		t.Fatalf("outbox %+v, %v", all, err)
	}
	mine, _ := s.OutboundList(ctx, OutboundFilter{Recipient: "5511900000002", Unsent: true})
	if len(mine) != 1 || mine[0].To != "5511900000002" {
		t.Errorf("by recipient %+v", mine)
	}
	if sent, _ := s.OutboundList(ctx, OutboundFilter{State: OutSent}); len(sent) != 0 {
		t.Errorf("state filter %+v", sent)
	}
	states, err := s.OutboundStates(ctx, []string{all[0].ID, "msg_none"})
	if err != nil || len(states) != 1 || states[all[0].ID].State != OutQueued {
		t.Errorf("states %+v, %v", states, err)
	}
	if stuck, unknown, err := s.StuckOutbound(ctx, time.Minute); err != nil || stuck != 0 || unknown != 0 {
		t.Errorf("just queued: stuck %d unknown %d %v", stuck, unknown, err)
	}
	if stuck, _, _ := s.StuckOutbound(ctx, -time.Minute); stuck != 2 {
		t.Errorf("queued before the cut: %d, want 2", stuck)
	}
	if _, err := s.OutboundByWAMID(ctx, "wamid.none"); err != ErrNotFound {
		t.Errorf("unknown wamid: %v", err)
	}
}
