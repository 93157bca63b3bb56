package sdk

import (
	"errors"
	"mime"
	"strings"
)

// MediaState says whether the hub holds the file of a message's media.
type MediaState string

const (
	// MediaPending: the hub has not fetched the file from WhatsApp yet;
	// OpenMedia fetches it on demand.
	MediaPending MediaState = "pending"
	// MediaAvailable: the hub holds the file; OpenMedia streams it.
	MediaAvailable MediaState = "available"
	// MediaUnavailable: the file can no longer be had (gone at Meta, too
	// large for the hub's media store, a digest that did not match). The
	// event goes on without it; Media.Reason says why.
	MediaUnavailable MediaState = "unavailable"
)

// MediaInfo describes a file the hub keeps.
type MediaInfo struct {
	// ID opens the file (Host.OpenMedia) and sends it
	// (OutboundMedia.ID): an inbound message's Media.ID, or the id
	// Host.PutMedia or POST /api/v1/media returned.
	ID       string `json:"id"`
	MimeType string `json:"mime_type,omitempty"`
	// SHA256 is the hex digest of the bytes.
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size"`
	Filename string `json:"filename,omitempty"`
}

// MediaUpload describes a file a connector hands the hub: an agent's
// attachment to send to a customer.
type MediaUpload struct {
	MimeType string `json:"mime_type"`
	Filename string `json:"filename,omitempty"`
	// Size, when the connector knows it (> 0), lets the hub refuse a
	// file that is too large before reading any of it.
	Size int64 `json:"size,omitempty"`
}

// ErrMediaUnavailable is Host.OpenMedia's error for a file the hub does
// not hold and cannot fetch. A connector tells its users so ("the
// customer's photo could not be retrieved") and delivers the event.
var ErrMediaUnavailable = errors.New("media unavailable")

// Media types of WhatsApp messages, as OutboundMedia.Type and
// Message.Type name them.
const (
	MediaImage    = "image"
	MediaAudio    = "audio"
	MediaVideo    = "video"
	MediaDocument = "document"
	MediaSticker  = "sticker"
)

// OutboundMedia is a file to send: an image, audio (a voice note too),
// video, document or sticker.
type OutboundMedia struct {
	// Type is the WhatsApp message type; empty means the one the file's
	// MIME type implies (MediaTypeFor).
	Type string `json:"type,omitempty"`
	// ID is a file the hub holds (Host.PutMedia, POST /api/v1/media, or an
	// inbound message's media); URL is a public https link the hub fetches
	// instead. Exactly one is set.
	ID       string `json:"id,omitempty"`
	URL      string `json:"url,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// MediaTypeFor is the WhatsApp message type that carries a file of the
// given MIME type: images and videos WhatsApp plays inline as themselves,
// audio as audio, anything else as a document.
func MediaTypeFor(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mimeType))
	}
	switch mt {
	case "image/jpeg", "image/png":
		return MediaImage
	case "image/webp":
		return MediaSticker
	case "video/mp4", "video/3gpp":
		return MediaVideo
	case "audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg":
		return MediaAudio
	}
	return MediaDocument
}
