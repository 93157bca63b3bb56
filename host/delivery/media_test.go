package delivery

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// startMedia is a harness whose engine prepares events with a media store
// on the harness's own store, holding media events for up to wait.
func startMedia(t *testing.T, wait time.Duration, fake *fakeConnector) *harness {
	t.Helper()
	return startWith(t, Policy{MaxAttempts: 3}, fake, func(o *Options) {
		b, err := media.NewLocal(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			t.Fatal(err)
		}
		ms, err := media.New(media.Options{Backend: b, Records: o.Store.(*store.Store), Wait: wait, Clock: o.Clock, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		o.Prepare = ms.Prepare
	})
}

func (h *harness) appendMedia(conv, id, mediaID string) {
	h.t.Helper()
	ev := []sdk.Event{{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: t0, ReceivedAt: t0,
		Business: &sdk.Business{PhoneNumberID: "pn"}, Contact: &sdk.Contact{WAID: conv},
		Message: &sdk.Message{ID: "wamid." + id, Type: "image", Media: &sdk.Media{ID: mediaID, MimeType: "image/jpeg", SHA256: "x"}}}}
	if _, err := h.st.Append(context.Background(), ev); err != nil {
		h.t.Fatal(err)
	}
}

func TestMediaEventsWaitForTheirFile(t *testing.T) {
	tests := []struct {
		name string
		// end finishes the fetch (or lets the wait run out).
		end       func(h *harness)
		wantState sdk.MediaState
		wantSize  int64
		reason    string
	}{
		{"fetched", func(h *harness) {
			if err := h.st.FinishMediaFetch(context.Background(), store.MediaOutcome{ID: "m1", State: sdk.MediaAvailable,
				SHA256: "ab", Size: 4940, MimeType: "image/jpeg"}); err != nil {
				h.t.Fatal(err)
			}
		}, sdk.MediaAvailable, 4940, ""},
		{"given up", func(h *harness) {
			if err := h.st.FinishMediaFetch(context.Background(), store.MediaOutcome{ID: "m1", State: sdk.MediaUnavailable,
				Reason: "gone at WhatsApp"}); err != nil {
				h.t.Fatal(err)
			}
		}, sdk.MediaUnavailable, 0, "gone at WhatsApp"},
		{"wait runs out", func(h *harness) { h.advance(time.Minute) }, sdk.MediaPending, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startMedia(t, time.Minute, newFake(delivered))
			h.appendMedia("5511", "a-photo", "m1")
			h.appendText("5511", "", "depois da foto") // a-000 is the photo's id space; ids differ
			h.append("5522", 1)
			// Only the other conversation goes: the photo is held and its
			// conversation's next message waits behind it.
			first := h.next()
			if len(first) != 1 || first[0].ID != "5522-000" {
				t.Fatalf("first call: %v, want only 5522-000", ids(first))
			}
			tt.end(h)
			var got []sdk.Event
			for len(got) < 3 {
				got = append(got, h.next()...)
			}
			if got[0].ID != "a-photo" || got[1].ID != "5511-000" && got[1].ID != "5511-001" {
				t.Fatalf("then: %v, want the photo first, then its conversation", ids(got))
			}
			m := got[0].Message.Media
			if m == nil || m.State != tt.wantState || m.Size != tt.wantSize || m.Reason != tt.reason {
				t.Fatalf("delivered media %+v, want state %s size %d reason %q", m, tt.wantState, tt.wantSize, tt.reason)
			}
			waitFor(t, h.st, func() bool { return h.counts().Delivered == 4 })
			if d := h.deliveries("a-photo")[0]; len(d.Attempts) != 1 || d.State != store.StateDelivered {
				t.Fatalf("photo delivery: %+v; the hold must spend no attempt", d)
			}
		})
	}
}

func ids(evs []sdk.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// A message that arrives while its conversation waits for a file waits
// too, and the worker sleeps meanwhile (on the clock, until the hold
// ends) instead of spinning over an event that is due but blocked.
func TestMessageAfterAHeldFileWaitsWithIt(t *testing.T) {
	h := startMedia(t, time.Minute, newFake(delivered))
	h.appendMedia("5511", "a-photo", "m1")
	h.append("5522", 1)
	if first := h.next(); len(first) != 1 || first[0].ID != "5522-000" {
		t.Fatalf("first call: %v, want only 5522-000", ids(first))
	}
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 1 })
	h.appendText("5511", "chegou a foto?")
	waitFor(t, h.st, func() bool { return len(h.deliveries("5511-000")) == 1 })
	// What the worker sleeps until: the end of the hold, not the later
	// message, which is due but blocked (the worker would spin on it).
	if next, ok, err := h.st.NextDueIn(context.Background(), "c", nil); err != nil || !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextDueIn = %v, %v, %v; want the hold's end %v", next, ok, err, t0.Add(time.Minute))
	}
	h.advance(time.Minute)
	var got []sdk.Event
	for len(got) < 2 {
		got = append(got, h.next()...)
	}
	if len(got) != 2 || got[0].ID != "a-photo" || got[1].ID != "5511-000" {
		t.Fatalf("after the wait: %v, want the photo, then the later message", ids(got))
	}
}
