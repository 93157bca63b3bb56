package mediafile

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

func TestName(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 1, 0, time.UTC)
	ev := func(typ, mimeType, filename string, voice bool) *sdk.Event {
		return &sdk.Event{OccurredAt: at, Message: &sdk.Message{Type: typ, Media: &sdk.Media{ID: "1", MimeType: mimeType, Filename: filename, Voice: voice}}}
	}
	for _, tc := range []struct {
		ev   *sdk.Event
		info sdk.MediaInfo
		want string
	}{
		{ev("image", "image/jpeg", "", false), sdk.MediaInfo{}, "whatsapp-image-20261124-120001.jpg"},
		{ev("audio", "audio/ogg; codecs=opus", "", true), sdk.MediaInfo{}, "whatsapp-voice-note-20261124-120001.ogg"},
		{ev("audio", "audio/mpeg", "", false), sdk.MediaInfo{}, "whatsapp-audio-20261124-120001.mp3"},
		{ev("document", "application/pdf", "Fatura.pdf", false), sdk.MediaInfo{}, "Fatura.pdf"},
		{ev("document", "application/pdf", "../../etc/pass\nwd.pdf", false), sdk.MediaInfo{}, "passwd.pdf"},
		{ev("document", "", "", false), sdk.MediaInfo{MimeType: "application/x-unknown-to-all"}, "whatsapp-document-20261124-120001.bin"},
		{ev("document", "", "", false), sdk.MediaInfo{Filename: "proposta.pdf"}, "proposta.pdf"},
	} {
		if got := Name(tc.ev, tc.info); got != tc.want {
			t.Errorf("Name(%+v, %+v) = %q, want %q", tc.ev.Message.Media, tc.info, got, tc.want)
		}
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: gone at Meta", sdk.ErrMediaUnavailable), "gone at Meta"},
		{fmt.Errorf("open media 123: %w: digest mismatch", sdk.ErrMediaUnavailable), "digest mismatch"},
		{errors.New("connection refused"), "connection refused"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := Unavailable("voice note", ""); got != "the voice note could not be retrieved: the hub does not hold it" {
		t.Errorf("Unavailable = %q", got)
	}
}

func TestSize(t *testing.T) {
	sizes := []struct {
		n    int64
		want string
	}{{0, "0 bytes"}, {1023, "1023 bytes"}, {1024, "1 KB"}, {40 << 10, "40 KB"}, {5 << 19, "2.5 MB"}}
	for _, tc := range sizes {
		if got := Size(tc.n); got != tc.want {
			t.Errorf("Size(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
