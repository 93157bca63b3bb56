package outbound

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

// Headers of real files, as far as the rules read them.
var (
	opusHead   = append([]byte("OggS\x00\x02"+strings.Repeat("\x00", 20)+"\x01\x13"), []byte("OpusHead\x01\x02")...)
	vorbisHead = append([]byte("OggS\x00\x02"+strings.Repeat("\x00", 20)+"\x01\x1e"), []byte("\x01vorbis\x00\x00")...)
	// VP8X with the animation flag (0x02), and a plain lossy WebP.
	animatedWebP = []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x12\x00\x00\x00")
	staticWebP   = []byte("RIFF\x00\x00\x00\x00WEBPVP8 \x0a\x00\x00\x00\x00\x00\x00\x00")
)

func TestCheckMedia(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		mime    string
		size    int64
		head    []byte
		caption string
		want    string // the message type, or
		code    string // the refusal code
	}{
		{name: "jpeg image", mime: "image/jpeg", size: 5 * mib, want: "image"},
		{name: "jpg alias", mime: "image/jpg", size: 1000, want: "image"},
		{name: "png with caption", mime: "image/png", size: 1000, caption: "the broken part", want: "image"},
		{name: "image over 5 MB", mime: "image/jpeg", size: 5*mib + 1, code: RefusedMediaTooLarge},
		{name: "large png as a document", typ: "document", mime: "image/png", size: 20 * mib, want: "document"},
		{name: "gif is no image", typ: "image", mime: "image/gif", size: 1000, code: RefusedMediaType},
		{name: "gif defaults to document and is refused", mime: "image/gif", size: 1000, code: RefusedMediaType},
		{name: "pdf", mime: "application/pdf", size: 100 * mib, want: "document"},
		{name: "pdf over 100 MB", mime: "application/pdf", size: 100*mib + 1, code: RefusedMediaTooLarge},
		{name: "docx", mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", size: 10, want: "document"},
		{name: "zip", mime: "application/zip", size: 10, code: RefusedMediaType},
		{name: "no MIME type", mime: "", size: 10, code: RefusedMediaType},
		{name: "mp3", mime: "audio/mpeg", size: 16 * mib, want: "audio"},
		{name: "audio over 16 MB", mime: "audio/aac", size: 16*mib + 1, code: RefusedMediaTooLarge},
		{name: "opus voice note", mime: "audio/ogg; codecs=opus", size: 4000, head: opusHead, want: "audio"},
		{name: "ogg vorbis", mime: "audio/ogg", size: 4000, head: vorbisHead, code: RefusedMediaType},
		{name: "caption on audio", mime: "audio/mpeg", size: 10, caption: "listen", code: RefusedMediaCaption},
		{name: "mp4 video", mime: "video/mp4", size: 16 * mib, caption: "how to fix it", want: "video"},
		{name: "3gp alias", mime: "video/3gp", size: 10, want: "video"},
		{name: "video over 16 MB", mime: "video/mp4", size: 16*mib + 1, code: RefusedMediaTooLarge},
		{name: "quicktime", mime: "video/quicktime", size: 10, code: RefusedMediaType},
		{name: "static sticker", mime: "image/webp", size: 100 * kib, head: staticWebP, want: "sticker"},
		{name: "static sticker over 100 KB", mime: "image/webp", size: 100*kib + 1, head: staticWebP, code: RefusedMediaTooLarge},
		{name: "animated sticker", mime: "image/webp", size: 500 * kib, head: animatedWebP, want: "sticker"},
		{name: "animated sticker over 500 KB", mime: "image/webp", size: 500*kib + 1, head: animatedWebP, code: RefusedMediaTooLarge},
		{name: "caption on sticker", mime: "image/webp", size: 10, head: staticWebP, caption: "hi", code: RefusedMediaCaption},
		{name: "webp as image", typ: "image", mime: "image/webp", size: 10, code: RefusedMediaType},
		{name: "caption of 1024 characters", mime: "image/png", size: 10, caption: strings.Repeat("é", 1024), want: "image"},
		{name: "caption of 1025 characters", mime: "image/png", size: 10, caption: strings.Repeat("é", 1025), code: RefusedMediaCaption},
		{name: "empty file", mime: "image/png", size: 0, code: RefusedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkMedia(tt.typ, sdk.MediaInfo{ID: "m1", MimeType: tt.mime, Size: tt.size, Filename: "f"}, tt.head, tt.caption)
			if tt.code != "" {
				var ref *sdk.RefusedError
				if !errors.As(err, &ref) || ref.Code != tt.code {
					t.Fatalf("got %q, %v; want refusal %s", got, err, tt.code)
				}
				if ref.Message == "" {
					t.Fatal("a refusal without a message")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckMediaShape(t *testing.T) {
	tests := []struct {
		name string
		m    sdk.OutboundMedia
		ok   bool
	}{
		{"id", sdk.OutboundMedia{ID: "m1"}, true},
		{"url", sdk.OutboundMedia{URL: "https://files.example/a.pdf"}, true},
		{"neither", sdk.OutboundMedia{Type: "image"}, false},
		{"both", sdk.OutboundMedia{ID: "m1", URL: "https://files.example/a.pdf"}, false},
		{"http url", sdk.OutboundMedia{URL: "http://files.example/a.pdf"}, false},
		{"unknown type", sdk.OutboundMedia{ID: "m1", Type: "gif"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkMediaShape(&tt.m)
			var inv *InvalidError
			if tt.ok != (err == nil) || (err != nil && !errors.As(err, &inv)) {
				t.Fatalf("got %v, want ok=%v (or an *InvalidError)", err, tt.ok)
			}
		})
	}
}

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1:248:1893:25c8:1946": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "172.16.5.4": false,
		"169.254.169.254": false, "100.64.0.1": false, "::1": false, "fe80::1": false, "0.0.0.0": false, "fd00::1": false,
	} {
		if got := refusePrivate("tcp", net.JoinHostPort(addr, "443"), nil) == nil; got != want {
			t.Errorf("%s: public %v, want %v", addr, got, want)
		}
	}
}
