package console

import (
	"bytes"
	"container/list"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	_ "image/png" // customers send PNG screenshots too
	"io"
	"sync"
)

// thumbSize is the longest side of a conversation's preview of a photo.
const thumbSize = 320

// Photos larger than these are shown at full size rather than decoded:
// decoding costs memory in proportion to the pixels.
const (
	maxThumbSource = 16 << 20
	maxThumbPixels = 40_000_000
)

// thumbnail decodes a JPEG or PNG and scales it down so its longer side
// is thumbSize, averaging the pixels each thumbnail pixel covers (a box
// filter: sharp enough for a preview, no aliasing).
func thumbnail(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxThumbSource+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxThumbSource {
		return nil, fmt.Errorf("too large for a preview")
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if cfg.Width*cfg.Height > maxThumbPixels || cfg.Width == 0 || cfg.Height == 0 {
		return nil, fmt.Errorf("%dx%d is too many pixels for a preview", cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if w > thumbSize || h > thumbSize {
		if w >= h {
			tw, th = thumbSize, max(1, h*thumbSize/w)
		} else {
			tw, th = max(1, w*thumbSize/h), thumbSize
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := 0; y < th; y++ {
		y0, y1 := b.Min.Y+y*h/th, b.Min.Y+max((y+1)*h/th, y*h/th+1)
		for x := 0; x < tw; x++ {
			x0, x1 := b.Min.X+x*w/tw, b.Min.X+max((x+1)*w/tw, x*w/tw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := src.At(sx, sy).RGBA()
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			dst.Set(x, y, color.RGBA64{uint16(r / n), uint16(g / n), uint16(bl / n), uint16(a / n)})
		}
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// thumbCache keeps recent previews by content digest: a conversation
// page asks for the same ones at every refresh.
type thumbCache struct {
	mu    sync.Mutex
	max   int
	order *list.List
	byKey map[string]*list.Element
}

type thumbEntry struct {
	key  string
	data []byte
}

func newThumbCache(n int) *thumbCache {
	return &thumbCache{max: n, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *thumbCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*thumbEntry).data, true
	}
	return nil, false
}

func (c *thumbCache) put(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&thumbEntry{key, data})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*thumbEntry).key)
	}
}
