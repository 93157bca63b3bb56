package sdktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/wahub/wahub/sdk"
)

// fakeMedia is a file the fake host holds.
type fakeMedia struct {
	info sdk.MediaInfo
	data []byte
}

// AddMedia makes a file available to OpenMedia under info.ID, as the hub
// holds an inbound message's media; SHA256 and Size are filled from data.
func (h *FakeHost) AddMedia(info sdk.MediaInfo, data []byte) {
	sum := sha256.Sum256(data)
	info.SHA256, info.Size = hex.EncodeToString(sum[:]), int64(len(data))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.media == nil {
		h.media = map[string]fakeMedia{}
	}
	h.media[info.ID] = fakeMedia{info: info, data: append([]byte(nil), data...)}
}

// OpenMedia streams a file added with AddMedia or PutMedia; any other id
// is sdk.ErrMediaUnavailable, as the hub answers for a file it lost.
func (h *FakeHost) OpenMedia(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	h.mu.Lock()
	m, ok := h.media[id]
	h.mu.Unlock()
	if !ok {
		return sdk.MediaInfo{}, nil, fmt.Errorf("%w: no media %q", sdk.ErrMediaUnavailable, id)
	}
	return m.info, io.NopCloser(bytes.NewReader(m.data)), nil
}

// PutMedia keeps the file under a content-derived id, as the hub does; a
// file larger than MaxMedia (when set) is refused like the hub refuses
// it.
func (h *FakeHost) PutMedia(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	h.mu.Lock()
	limit := h.MaxMedia
	h.mu.Unlock()
	if limit > 0 && m.Size > limit {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_too_large", Message: fmt.Sprintf("the file is %d bytes; the hub takes at most %d", m.Size, limit)}
	}
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	data, err := io.ReadAll(src)
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	if limit > 0 && int64(len(data)) > limit {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_too_large", Message: fmt.Sprintf("the file is larger than %d bytes, the most the hub takes", limit)}
	}
	sum := sha256.Sum256(data)
	info := sdk.MediaInfo{ID: "med_" + hex.EncodeToString(sum[:12]), MimeType: m.MimeType, Filename: m.Filename}
	h.AddMedia(info, data)
	h.mu.Lock()
	defer h.mu.Unlock()
	info = h.media[info.ID].info
	h.uploads = append(h.uploads, info)
	return info, nil
}

// Uploads returns what the connector stored with PutMedia, in order.
func (h *FakeHost) Uploads() []sdk.MediaInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.MediaInfo(nil), h.uploads...)
}

// MediaBytes returns the bytes the fake holds under id.
func (h *FakeHost) MediaBytes(id string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.media[id]
	return m.data, ok
}
