package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// Charts are drawn here as inline SVG: no script, no library, nothing to
// load; they print, scale and follow the page's colours (light or dark)
// through CSS classes. Each has a title and a caption with the totals for
// screen readers.

type line struct {
	Name   string
	Values []int64
}

const (
	chartW, chartH = 640, 180
	padL, padR     = 44, 8
	padT, padB     = 8, 22
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// chart draws one polyline per series over buckets of step from since.
func chart(title string, since time.Time, step time.Duration, series []line) template.HTML {
	var b strings.Builder
	id := "ch-" + strconv.FormatUint(uint64(hash(title)), 36)
	var max int64
	n := 0
	totals := make([]string, 0, len(series))
	for _, s := range series {
		var sum int64
		for _, v := range s.Values {
			if v > max {
				max = v
			}
			sum += v
		}
		n = maxInt(n, len(s.Values))
		totals = append(totals, fmt.Sprintf("%s %d", s.Name, sum))
	}
	top := niceMax(max)
	fmt.Fprintf(&b, `<figure class="chart"><svg viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t %s-c"><title id="%s-t">%s</title>`,
		chartW, chartH, id, id, id, esc(title))
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	// Grid and y labels at 0, half and top.
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(padT) + plotH*(1-f)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, compact(float64(top)*f))
	}
	if n > 0 {
		for _, f := range []float64{0, 0.5, 1} {
			i := int(float64(n-1) * f)
			x := float64(padL) + plotW*f
			anchor := map[float64]string{0: "start", 0.5: "middle", 1: "end"}[f]
			t := since.Add(time.Duration(i) * step).Local()
			label := t.Format("15:04")
			if step >= time.Hour {
				label = t.Format("Jan 2 15:04")
			}
			fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, chartH-6, anchor, label)
		}
	}
	for k, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		var pts strings.Builder
		for i, v := range s.Values {
			x := float64(padL)
			if n > 1 {
				x += plotW * float64(i) / float64(n-1)
			}
			y := float64(padT) + plotH*(1-float64(v)/float64(top))
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline class="s%d" points="%s"><title>%s</title></polyline>`, k%6, strings.TrimSpace(pts.String()), esc(s.Name))
	}
	b.WriteString(`</svg><figcaption id="` + id + `-c">`)
	b.WriteString(`<strong>` + esc(title) + `</strong>`)
	if len(series) == 0 {
		b.WriteString(` — nothing yet`)
	}
	b.WriteString(`<span class="legend">`)
	for k, s := range series {
		fmt.Fprintf(&b, `<span><i class="k s%d" aria-hidden="true"></i>%s</span>`, k%6, esc(totals[k]))
		_ = s
	}
	b.WriteString(`</span></figcaption></figure>`)
	return template.HTML(b.String())
}

// bars draws one horizontal bar per entry.
func bars(title string, items []line) template.HTML {
	var b strings.Builder
	var max int64
	for _, it := range items {
		if len(it.Values) > 0 && it.Values[0] > max {
			max = it.Values[0]
		}
	}
	top := niceMax(max)
	b.WriteString(`<figure class="chart bars"><figcaption><strong>` + esc(title) + `</strong></figcaption><dl>`)
	if len(items) == 0 {
		b.WriteString(`<dt>no connectors</dt><dd></dd>`)
	}
	for k, it := range items {
		v := int64(0)
		if len(it.Values) > 0 {
			v = it.Values[0]
		}
		fmt.Fprintf(&b, `<dt>%s</dt><dd><span class="bar s%d" style="--w:%.1f%%"></span><span class="n">%d</span></dd>`,
			esc(it.Name), k%6, 100*float64(v)/float64(top), v)
	}
	b.WriteString(`</dl></figure>`)
	return template.HTML(b.String())
}

// niceMax rounds up to 1, 2 or 5 times a power of ten, so axes read well.
func niceMax(v int64) int64 {
	if v <= 0 {
		return 1
	}
	p := int64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// compact writes an axis label: 0.5, 25, 2.5k, 1M.
func compact(v float64) string {
	switch {
	case v >= 1_000_000:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 10_000:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
