package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

var mediaKey = []byte(`"media"`)

// Prepare gives an event to delivery as a plugin should see it now:
// message.media with the file's state, size and, when unavailable, why.
// While the file is still being fetched and the event is younger than
// media.delivery_wait (or the hub was started less than that ago), it
// returns hold instead: delivery tries again then,
// or as soon as the fetch ends (the store releases the hold), so
// connectors normally see the file available and one that is lost never
// holds up a conversation for longer than the wait.
func (s *Store) Prepare(ctx context.Context, body []byte) (out []byte, hold time.Time, err error) {
	if !bytes.Contains(body, mediaKey) {
		return body, time.Time{}, nil
	}
	var ev struct {
		Message map[string]json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Message == nil || ev.Message["media"] == nil {
		return body, time.Time{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(ev.Message["media"], &m); err != nil {
		return body, time.Time{}, nil
	}
	var id string
	if json.Unmarshal(m["id"], &id) != nil || id == "" {
		return body, time.Time{}, nil
	}
	rec, err := s.records.MediaRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return body, time.Time{}, nil // an event from before the media store
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	if rec.State == sdk.MediaPending && s.wait > 0 {
		from := rec.CreatedAt
		if s.started.After(from) {
			from = s.started
		}
		if until := from.Add(s.wait); until.After(s.clock.Now()) {
			return nil, until, nil
		}
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		m[k] = b
	}
	set("state", rec.State)
	delete(m, "reason")
	if rec.State == sdk.MediaUnavailable && rec.Reason != "" {
		set("reason", rec.Reason)
	}
	if rec.Size > 0 {
		set("size", rec.Size)
	}
	if _, ok := m["mime_type"]; !ok && rec.MimeType != "" {
		set("mime_type", rec.MimeType)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("media: event media: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return body, time.Time{}, nil
	}
	ev.Message["media"] = mb
	msg, err := json.Marshal(ev.Message)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("media: event message: %w", err)
	}
	top["message"] = msg
	out, err = json.Marshal(top)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("media: event: %w", err)
	}
	return out, time.Time{}, nil
}

// Annotate fills an event's media state for readers other than delivery
// (the admin API's events), without holding anything.
func (s *Store) Annotate(ctx context.Context, ev *sdk.Event) {
	if ev.Message == nil || ev.Message.Media == nil || ev.Message.Media.ID == "" {
		return
	}
	rec, err := s.records.MediaRecord(ctx, ev.Message.Media.ID)
	if err != nil {
		return
	}
	md := ev.Message.Media
	md.State, md.Reason = rec.State, ""
	if rec.State == sdk.MediaUnavailable {
		md.Reason = rec.Reason
	}
	if rec.Size > 0 {
		md.Size = rec.Size
	}
}
