package outbound

import (
	"bytes"
	"fmt"
	"mime"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
)

// Refusal codes of media messages: a file WhatsApp would refuse is refused
// before anything is uploaded.
const (
	RefusedMediaTooLarge    = "media_too_large"
	RefusedMediaType        = "media_type"
	RefusedMediaCaption     = "media_caption"
	RefusedMediaUnavailable = "media_unavailable"
)

// WhatsApp's media rules (Cloud API, "Supported media types",
// https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types,
// and the upload endpoint's "type" options on the same page; the same
// table in AWS End User Messaging's "Supported media file types and sizes
// in WhatsApp", https://docs.aws.amazon.com/social-messaging/latest/userguide/supported-media-types.html):
//
//	type      MIME types                                                   largest
//	image     image/jpeg, image/png                                        5 MB
//	audio     audio/aac, audio/amr, audio/mpeg, audio/mp4,
//	          audio/ogg (Opus only: "base audio/ogg not supported")        16 MB
//	video     video/mp4, video/3gpp (H.264 + AAC)                          16 MB
//	document  text/plain, application/pdf, Word, Excel, PowerPoint
//	          (.doc/.docx/.xls/.xlsx/.ppt/.pptx)                           100 MB
//	sticker   image/webp                                                   100 KB static, 500 KB animated
//
// Captions: image, video and document take one (at most 1024 characters);
// audio and sticker do not. Only a document shows a filename.
//
// Meta writes MB and KB without saying which; the hub reads them as MiB
// and KiB (what Meta's own SDKs and most BSPs enforce). Codecs inside
// MP4/3GPP are not checked: that would mean parsing the container, and
// Meta answers a wrong codec with a failed status (131053) the sender
// records.
type mediaRule struct {
	mimes   []string
	max     int64
	caption bool
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

var documentMIMEs = []string{
	"text/plain", "application/pdf",
	"application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

var mediaRules = map[string]mediaRule{
	sdk.MediaImage:    {mimes: []string{"image/jpeg", "image/png"}, max: 5 * mib, caption: true},
	sdk.MediaAudio:    {mimes: []string{"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, max: 16 * mib},
	sdk.MediaVideo:    {mimes: []string{"video/mp4", "video/3gpp"}, max: 16 * mib, caption: true},
	sdk.MediaDocument: {mimes: documentMIMEs, max: 100 * mib, caption: true},
	sdk.MediaSticker:  {mimes: []string{"image/webp"}, max: 100 * kib},
}

// Stickers that move may be larger.
const animatedStickerMax = 500 * kib

// MaxCaption is the longest media caption WhatsApp takes, in characters.
const MaxCaption = 1024

// MediaHead is how much of a file the rules read: enough for the WebP
// and Ogg headers that tell an animated sticker and an Opus voice note.
const MediaHead = 64

// mimeAliases are spellings that mean a MIME type WhatsApp names
// differently.
var mimeAliases = map[string]string{
	"image/jpg":         "image/jpeg",
	"image/pjpeg":       "image/jpeg",
	"video/3gp":         "video/3gpp",
	"audio/mp3":         "audio/mpeg",
	"audio/x-m4a":       "audio/mp4",
	"audio/m4a":         "audio/mp4",
	"audio/opus":        "audio/ogg",
	"audio/x-aac":       "audio/aac",
	"application/x-pdf": "application/pdf",
}

// BaseMIME is a MIME type as WhatsApp's upload takes it: lower case,
// without parameters, common aliases resolved ("image/jpg" is
// "image/jpeg", "audio/ogg; codecs=opus" is "audio/ogg").
func BaseMIME(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(mimeType)), ";")
		mt = strings.TrimSpace(mt)
	}
	if a, ok := mimeAliases[mt]; ok {
		return a
	}
	return mt
}

// mediaTypes lists the message types, for error messages.
const mediaTypes = "image, audio, video, document or sticker"

// checkMediaShape is what can be wrong with a media request before the
// file is looked at.
func checkMediaShape(m *sdk.OutboundMedia) error {
	if (m.ID == "") == (m.URL == "") {
		return &InvalidError{`media: exactly one of "id" (a file the hub holds: POST /api/v1/media, or an inbound message's media id) and "url" (a public https link) is required`}
	}
	if m.Type != "" {
		if _, ok := mediaRules[m.Type]; !ok {
			return &InvalidError{fmt.Sprintf(`media: "type" %q is not a WhatsApp media type (%s; empty: from the file's MIME type)`, m.Type, mediaTypes)}
		}
	}
	if m.URL != "" && !strings.HasPrefix(strings.ToLower(m.URL), "https://") {
		return &InvalidError{`media: "url" must be an https link`}
	}
	return nil
}

// checkMedia applies WhatsApp's rules to a file sent as a media message of
// type typ (empty: the one its MIME type implies), whose first bytes are
// head. It returns the message type.
func checkMedia(typ string, info sdk.MediaInfo, head []byte, caption string) (string, error) {
	mt := BaseMIME(info.MimeType)
	if typ == "" {
		typ = sdk.MediaTypeFor(mt)
	}
	rule, ok := mediaRules[typ]
	if !ok {
		return "", &InvalidError{fmt.Sprintf(`media: "type" %q is not a WhatsApp media type (%s)`, typ, mediaTypes)}
	}
	allowed := rule.mimes
	if typ == sdk.MediaDocument {
		// A document is shown as a file, whatever it holds: a photo sent
		// at full quality is a document of an image type.
		allowed = allMediaMIMEs()
	}
	if !slices.Contains(allowed, mt) {
		if mt == "" {
			mt = "(none)"
		}
		if typ == sdk.MediaDocument {
			return "", refuse(RefusedMediaType, "WhatsApp does not send %s files (documents: PDF, plain text, Word, Excel or PowerPoint; or an image, audio or video type)", mt)
		}
		return "", refuse(RefusedMediaType, "WhatsApp does not send %s files as %s (it takes %s)", mt, typ, strings.Join(allowed, ", "))
	}
	if mt == "audio/ogg" && !isOpus(head) {
		return "", refuse(RefusedMediaType, "WhatsApp takes audio/ogg only with the Opus codec (a voice note); convert the file or send it as audio/mpeg")
	}
	limit := limitFor(typ, head)
	if info.Size > limit {
		return "", refuse(RefusedMediaTooLarge, "%s is %s; WhatsApp sends %s up to %s", describe(info), size(info.Size), what(typ, head), size(limit))
	}
	if info.Size == 0 {
		return "", refuse(RefusedMediaType, "%s is empty", describe(info))
	}
	if caption != "" {
		if !rule.caption {
			return "", refuse(RefusedMediaCaption, "WhatsApp shows no caption on %s messages; send the text as a message of its own", typ)
		}
		if n := utf8.RuneCountInString(caption); n > MaxCaption {
			return "", refuse(RefusedMediaCaption, "the caption has %d characters; WhatsApp takes at most %d", n, MaxCaption)
		}
	}
	return typ, nil
}

// limitFor is the largest file a message of type typ may carry.
func limitFor(typ string, head []byte) int64 {
	if typ == sdk.MediaSticker && isAnimatedWebP(head) {
		return animatedStickerMax
	}
	return mediaRules[typ].max
}

func allMediaMIMEs() []string {
	var out []string
	for _, t := range []string{sdk.MediaDocument, sdk.MediaImage, sdk.MediaVideo, sdk.MediaAudio, sdk.MediaSticker} {
		out = append(out, mediaRules[t].mimes...)
	}
	return out
}

func describe(info sdk.MediaInfo) string {
	if info.Filename != "" {
		return fmt.Sprintf("%q", info.Filename)
	}
	return "the file"
}

func what(typ string, head []byte) string {
	switch typ {
	case sdk.MediaImage:
		return "images"
	case sdk.MediaSticker:
		if isAnimatedWebP(head) {
			return "animated stickers"
		}
		return "static stickers"
	}
	return typ + " files"
}

// size writes n the way the limits are written.
func size(n int64) string {
	switch {
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MB", n/mib)
	case n >= mib:
		return fmt.Sprintf("%.1f MB", float64(n)/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KB", n/kib)
	case n >= kib:
		return fmt.Sprintf("%.1f KB", float64(n)/kib)
	}
	return fmt.Sprintf("%d bytes", n)
}

// isAnimatedWebP reads the extended WebP header: "RIFF" size "WEBP"
// "VP8X" size flags, where flag 0x02 is animation.
func isAnimatedWebP(head []byte) bool {
	return len(head) >= 21 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WEBP" &&
		string(head[12:16]) == "VP8X" && head[20]&0x02 != 0
}

// isOpus reads the first Ogg page: its first packet is "OpusHead" for an
// Opus stream (RFC 7845 §3), after the 27-byte page header and the
// page's segment table.
func isOpus(head []byte) bool {
	if len(head) < 27 || string(head[0:4]) != "OggS" {
		return false
	}
	at := 27 + int(head[26])
	return len(head) >= at+8 && bytes.Equal(head[at:at+8], []byte("OpusHead"))
}
