package webhook_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// A receiver gets a message's media block as the hub holds it: the id
// to fetch the bytes with (GET /api/v1/media/{id}), the type, the digest
// and size to check them against, and whether the hub holds the file
// (with why not). The connector does not read the file itself: an event
// whose file is lost or still pending is delivered like any other.
func TestMediaBlock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		media sdk.Media
		want  map[string]any
	}{
		{"available image", sdk.Media{ID: "1410321463286543", MimeType: "image/jpeg", SHA256: "wTqV5kCNN0dpSuZYaRTN2sEh7Wjoc4Nq1bZBV4s0R0o=", Size: 184321, Caption: "a caixa chegou amassada", State: sdk.MediaAvailable},
			map[string]any{"id": "1410321463286543", "mime_type": "image/jpeg", "sha256": "wTqV5kCNN0dpSuZYaRTN2sEh7Wjoc4Nq1bZBV4s0R0o=", "size": 184321.0, "caption": "a caixa chegou amassada", "state": "available"}},
		{"voice note still being fetched", sdk.Media{ID: "2210321463286543", MimeType: "audio/ogg; codecs=opus", SHA256: "bm90IGEgcmVhbCBkaWdlc3QgYnV0IGJhc2U2NA==", Size: 37890, Voice: true, State: sdk.MediaPending},
			map[string]any{"id": "2210321463286543", "mime_type": "audio/ogg; codecs=opus", "sha256": "bm90IGEgcmVhbCBkaWdlc3QgYnV0IGJhc2U2NA==", "size": 37890.0, "voice": true, "state": "pending"}},
		{"document gone at Meta", sdk.Media{ID: "3310321463286543", MimeType: "application/pdf", Filename: "Fatura.pdf", State: sdk.MediaUnavailable, Reason: "Meta answered 404 for the media id (gone after 30 days)"},
			map[string]any{"id": "3310321463286543", "mime_type": "application/pdf", "filename": "Fatura.pdf", "state": "unavailable", "reason": "Meta answered 404 for the media id (gone after 30 days)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := receiver(t)
			r, _ := start(t, configJSON(t, rcv.URL(), string(secret), nil))
			m := tc.media
			ev := sdk.Event{ID: "evt_media", Type: sdk.TypeMessageReceived, OccurredAt: fixedNow.Add(-time.Minute),
				Contact:        &sdk.Contact{WAID: "5511987650001"},
				ConversationID: "conv_1",
				Message:        &sdk.Message{ID: "wamid.m", Type: map[bool]string{true: "audio", false: "image"}[m.Voice], Media: &m}}
			if res := deliver(t, r, ev)["evt_media"]; res.Outcome != sdk.Delivered {
				t.Fatalf("outcome %s (%s), want delivered", res.Outcome, res.Error)
			}
			got := rcv.Received()
			if len(got) != 1 || !got[0].Valid {
				t.Fatalf("received %+v, want one signed delivery", got)
			}
			var body struct {
				Message struct {
					Media map[string]any `json:"media"`
				} `json:"message"`
			}
			if err := json.Unmarshal(got[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(body.Message.Media, tc.want) {
				t.Errorf("message.media = %v\nwant            %v", body.Message.Media, tc.want)
			}
		})
	}
}
