package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// mediaEcho opens each event's media through the host and puts a copy
// back, as a connector relaying an attachment both ways does.
type mediaEcho struct {
	host sdk.Host
	got  map[string]string // event id → what happened, for the test
}

func (m *mediaEcho) Describe() sdk.Info { return sdk.Info{Name: "media-echo", Version: "1"} }

func (m *mediaEcho) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	m.host = host
	return nil
}

func (m *mediaEcho) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	var out []sdk.Result
	for _, ev := range events {
		out = append(out, m.one(ctx, ev))
	}
	return out
}

func (m *mediaEcho) one(ctx context.Context, ev sdk.Event) sdk.Result {
	info, r, err := m.host.OpenMedia(ctx, ev.Message.Media.ID)
	if err != nil {
		return sdk.FailedResult(ev.ID, err)
	}
	defer r.Close()
	h := sha256.New()
	put, err := m.host.PutMedia(ctx, sdk.MediaUpload{MimeType: info.MimeType, Filename: info.Filename, Size: info.Size}, io.TeeReader(r, h))
	if err != nil {
		return sdk.FailedResult(ev.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 || put.SHA256 != info.SHA256 || put.Size != info.Size {
		return sdk.FailedResult(ev.ID, fmt.Errorf("read sha256 %s, put %s (%d bytes), want %s (%d bytes)", got, put.SHA256, put.Size, info.SHA256, info.Size))
	}
	return sdk.DeliveredResult(ev.ID)
}

// Files cross the plugin boundary in chunks both ways, whatever their
// size; the hub's refusals and lost files reach the connector as errors
// it can tell apart.
func TestMediaStreamsBetweenPluginAndHost(t *testing.T) {
	big := make([]byte, 9<<20+123) // many chunks and a partial last one
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name    string
		data    []byte // nil: the host holds no such file
		limit   int64
		outcome sdk.Outcome
		err     func(error) bool
	}{
		{name: "a large document", data: big, outcome: sdk.Delivered},
		{name: "an empty file", data: []byte{}, outcome: sdk.Delivered},
		{name: "one byte", data: []byte{7}, outcome: sdk.Delivered},
		{name: "a lost file", outcome: sdk.Failed, err: func(err error) bool { return errors.Is(err, sdk.ErrMediaUnavailable) }},
		{name: "too large for the hub", data: big, limit: 1 << 20, outcome: sdk.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, host := sdktest.Start(t, &mediaEcho{}, "media", nil)
			host.MaxMedia = tc.limit
			if tc.data != nil {
				host.AddMedia(sdk.MediaInfo{ID: "1003383421387256", MimeType: "application/pdf", Filename: "invoice.pdf"}, tc.data)
			}
			ev := sdk.Event{ID: "evt_1", Type: "message.received", Message: &sdk.Message{ID: "wamid.1", Type: "document",
				Media: &sdk.Media{ID: "1003383421387256", MimeType: "application/pdf"}}}
			res, err := r.Deliver(context.Background(), []sdk.Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].Outcome != tc.outcome {
				t.Fatalf("results %+v, want %v", res, tc.outcome)
			}
			if tc.outcome != sdk.Delivered {
				if tc.limit > 0 && !bytes.Contains([]byte(res[0].Error), []byte("media_too_large")) {
					t.Errorf("error %q, want the hub's refusal", res[0].Error)
				}
				if tc.data == nil && !bytes.Contains([]byte(res[0].Error), []byte(sdk.ErrMediaUnavailable.Error())) {
					t.Errorf("error %q, want %v", res[0].Error, sdk.ErrMediaUnavailable)
				}
				if len(host.Uploads()) != 0 {
					t.Errorf("uploads %v after a failure", host.Uploads())
				}
				return
			}
			ups := host.Uploads()
			if len(ups) != 1 {
				t.Fatalf("uploads %v", ups)
			}
			got, _ := host.MediaBytes(ups[0].ID)
			if !bytes.Equal(got, tc.data) || ups[0].Filename != "invoice.pdf" || ups[0].MimeType != "application/pdf" {
				t.Errorf("upload %+v: %d bytes, want %d identical", ups[0], len(got), len(tc.data))
			}
		})
	}
}

func TestMediaTypeFor(t *testing.T) {
	for mime, want := range map[string]string{
		"image/jpeg": sdk.MediaImage, "image/png": sdk.MediaImage, "image/webp": sdk.MediaSticker,
		"audio/ogg; codecs=opus": sdk.MediaAudio, "audio/mpeg": sdk.MediaAudio, "video/mp4": sdk.MediaVideo,
		"application/pdf": sdk.MediaDocument, "image/gif": sdk.MediaDocument, "": sdk.MediaDocument, "IMAGE/JPEG": sdk.MediaImage,
	} {
		if got := sdk.MediaTypeFor(mime); got != want {
			t.Errorf("MediaTypeFor(%q) = %q, want %q", mime, got, want)
		}
	}
}
