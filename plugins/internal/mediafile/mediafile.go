// Package mediafile names the files of WhatsApp messages the way the CRM
// and helpdesk connectors show them: what kind of file it is in words
// ("voice note"), the name it gets where it is stored, and why it could
// not be had.
package mediafile

import (
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// Noun names a message's file as a person would: image, voice note,
// audio, video, sticker, document, file.
func Noun(m *sdk.Message) string {
	switch {
	case m == nil:
		return "file"
	case m.Type == sdk.MediaAudio && m.Media != nil && m.Media.Voice:
		return "voice note"
	case m.Type == sdk.MediaImage:
		return "image"
	case m.Type == sdk.MediaAudio:
		return "audio"
	case m.Type == sdk.MediaVideo:
		return "video"
	case m.Type == sdk.MediaSticker:
		return "sticker"
	case m.Type == sdk.MediaDocument:
		return "document"
	}
	return "file"
}

// Unavailable is the note a connector shows instead of a file it could
// not get: "the image could not be retrieved: <reason>".
func Unavailable(noun, reason string) string {
	if reason == "" {
		reason = "the hub does not hold it"
	}
	return fmt.Sprintf("the %s could not be retrieved: %s", noun, reason)
}

// Reason is what an error of Host.OpenMedia says beyond "media
// unavailable".
func Reason(err error) string {
	msg := err.Error()
	sentinel := sdk.ErrMediaUnavailable.Error() + ": "
	if i := strings.LastIndex(msg, sentinel); i >= 0 && errors.Is(err, sdk.ErrMediaUnavailable) {
		return msg[i+len(sentinel):]
	}
	return msg
}

// Name is the file's name where the connector stores it: the customer's
// own file name when WhatsApp gave one (or the hub kept one), else one
// made of the kind and the message's time, with the usual extension.
func Name(ev *sdk.Event, info sdk.MediaInfo) string {
	m := ev.Message
	if m != nil && m.Media != nil {
		if name := clean(m.Media.Filename); name != "" {
			return name
		}
	}
	if name := clean(info.Filename); name != "" {
		return name
	}
	t := ev.OccurredAt
	if t.IsZero() {
		t = ev.ReceivedAt
	}
	mt := info.MimeType
	if m != nil && m.Media != nil && m.Media.MimeType != "" {
		mt = m.Media.MimeType
	}
	return fmt.Sprintf("whatsapp-%s-%s%s", strings.ReplaceAll(Noun(m), " ", "-"), t.UTC().Format("20060102-150405"), Extension(mt))
}

// clean keeps a file name a CRM can show: no directories, no control
// characters.
func clean(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	return strings.TrimSpace(name)
}

// extensions are those of the MIME types WhatsApp sends; the system's
// table, which differs between machines, only serves the rest.
var extensions = map[string]string{
	"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif",
	"audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/amr": ".amr",
	"video/mp4": ".mp4", "video/3gpp": ".3gp", "application/pdf": ".pdf", "text/plain": ".txt",
	"application/msword": ".doc", "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
	"application/vnd.ms-excel": ".xls", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
	"application/vnd.ms-powerpoint": ".ppt", "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}

// Size is a file's size for people: 512 bytes, 40 KB, 2.5 MB.
func Size(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatInt((n+512)>>10, 10) + " KB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Extension is the usual extension of a MIME type, ".bin" when unknown.
// The system's table is only the fallback: it differs between machines
// (image/jpeg is .jfif on some).
func Extension(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mimeType))
	}
	if ext, ok := extensions[mt]; ok {
		return ext
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}
