package hubspot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wahub/wahub/plugins/hubspot"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// Under a fake that answers 429 to every other call, delivering until
// everything is in (as the hub would, after each RetryAfter) logs every
// message once on one contact per customer, and the connector never sends
// faster than the fake's limit. It runs in a synctest bubble: the token
// bucket, the pauses, the fake's rate windows and the "hub's" waits all use
// the bubble's fake clock, and requests go to the fake in memory, so no
// real time passes.
func TestHalfOfCallsRateLimited(t *testing.T) {
	cases := []struct {
		name  string
		fault hubspottest.Fault
	}{
		{"ten-secondly without Retry-After", hubspottest.Fault{Status: http.StatusTooManyRequests}},
		{"ten-secondly with Retry-After", hubspottest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "2"}},
		{"search secondly", hubspottest.Fault{Status: http.StatusTooManyRequests, Policy: hubspottest.PolicySearch, Path: hubspottest.PathContactSearch}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const per10s, searchPerSec = 20, 4
				fake := hubspottest.NewServer(hubspottest.WithToken(token), hubspottest.WithSearchLag(5*time.Second),
					hubspottest.WithRateLimit(hubspottest.RateLimit{Per10Seconds: per10s, SearchPerSecond: searchPerSec}))
				fake.FailEvery(2, tc.fault)
				c := hubspot.New()
				hubspot.SetTransport(c, handlerTransport{fake})
				cfg, _ := json.Marshal(map[string]any{"token": token, "api_url": "http://hubspot.invalid",
					"requests_per_10s": per10s, "search_per_second": searchPerSec})
				host := sdktest.NewFakeHost()
				if err := c.Configure(context.Background(), sdk.Config{Name: "hubspot", Raw: cfg}, host); err != nil {
					t.Fatal(err)
				}

				customers := []*sdk.Contact{ana, bruno, carla}
				var events []sdk.Event
				for n := range 7 {
					for i, ct := range customers {
						id := fmt.Sprintf("evt_%d_%d", i, n)
						if n == 3 {
							events = append(events, outbound(id, ct, n, "resposta"))
						} else {
							events = append(events, inbound(id, ct, n, fmt.Sprintf("mensagem %d", n)))
						}
					}
				}
				pending := events
				rounds := 0
				for ; len(pending) > 0 && rounds < 1000; rounds++ {
					var next []sdk.Event
					wait := time.Duration(0)
					res := map[string]sdk.Result{}
					for _, r := range c.Deliver(context.Background(), pending) {
						res[r.EventID] = r
					}
					for _, ev := range pending {
						r := res[ev.ID]
						switch r.Outcome {
						case sdk.Delivered:
						case sdk.Retry:
							next = append(next, ev)
							wait = max(wait, r.RetryAfter)
						default:
							t.Fatalf("round %d: %s: %s (%s)", rounds, ev.ID, r.Outcome, r.Error)
						}
					}
					pending = next
					if len(pending) > 0 {
						time.Sleep(max(wait, time.Second)) // the hub's backoff
					}
				}
				if len(pending) > 0 {
					t.Fatalf("%d events still pending after %d rounds", len(pending), rounds)
				}
				contacts := fake.Contacts()
				if len(contacts) != len(customers) {
					t.Errorf("%d contacts, want %d", len(contacts), len(customers))
				}
				for _, ct := range contacts {
					if n := len(commsOf(fake, ct.ID)); n != 7 {
						t.Errorf("contact %s has %d communications, want 7", ct.Properties["phone"], n)
					}
				}
				if n := len(fake.Communications()); n != len(events) {
					t.Errorf("%d communications, want %d", n, len(events))
				}
				got10, gotSearch := fake.MaxObserved()
				if got10 > per10s || gotSearch > searchPerSec {
					t.Errorf("max observed %d per 10s and %d searches per second, limits %d and %d", got10, gotSearch, per10s, searchPerSec)
				}
				if n := fake.Throttled(); n != 0 {
					t.Errorf("the fake's own limit refused %d requests", n)
				}
				t.Logf("%d events in %d rounds, %d requests, max %d per 10s, %d searches per second",
					len(events), rounds, len(fake.Requests()), got10, gotSearch)
			})
		})
	}
}

// With no faults, a burst of new customers is paced under both limits.
func TestPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const per10s, searchPerSec = 30, 2
		fake := hubspottest.NewServer(hubspottest.WithRateLimit(hubspottest.RateLimit{Per10Seconds: per10s, SearchPerSecond: searchPerSec}))
		c := hubspot.New()
		hubspot.SetTransport(c, handlerTransport{fake})
		cfg, _ := json.Marshal(map[string]any{"token": token, "api_url": "http://hubspot.invalid", "requests_per_10s": per10s, "search_per_second": searchPerSec})
		if err := c.Configure(context.Background(), sdk.Config{Name: "hubspot", Raw: cfg}, sdktest.NewFakeHost()); err != nil {
			t.Fatal(err)
		}
		var events []sdk.Event
		for i := range 20 {
			ct := &sdk.Contact{WAID: fmt.Sprintf("55119000000%02d", i), Name: "Cliente"}
			events = append(events, inbound(fmt.Sprintf("evt_%d", i), ct, i, "oi"))
		}
		start := time.Now()
		for _, r := range c.Deliver(context.Background(), events) {
			if r.Outcome != sdk.Delivered {
				t.Fatalf("%s: %s (%s)", r.EventID, r.Outcome, r.Error)
			}
		}
		got10, gotSearch := fake.MaxObserved()
		if got10 > per10s || gotSearch > searchPerSec || fake.Throttled() != 0 {
			t.Errorf("max observed %d per 10s, %d searches per second, %d throttled; limits %d, %d", got10, gotSearch, fake.Throttled(), per10s, searchPerSec)
		}
		t.Logf("%d requests in %s, max %d per 10s, %d searches per second", len(fake.Requests()), time.Since(start), got10, gotSearch)
		// 60 requests at 27 per 10 s after a burst of 3: about 20 s.
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("took %s of fake time; pacing is slower than the limit needs", took)
		}
	})
}
