package route

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// fold is the one normalisation keywords and message text both go through,
// so that whatever it does to a word it does on both sides: compatibility
// decomposition (so "fátura" and "ＦＡＴＵＲＡ" become plain letters plus
// marks), dropping the nonspacing marks, and lowercasing.
func fold(s string) string {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			break
		}
	}
	if i == len(s) {
		// Lowercase ASCII, the common case for typed keywords and many
		// messages, needs no copy at all.
		return s
	}
	if isASCII(s[i:]) {
		b := make([]byte, len(s))
		for j := 0; j < len(s); j++ {
			c := s[j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[j] = c
		}
		return string(b)
	}
	d := norm.NFKD.String(s)
	b := make([]byte, 0, len(d))
	for _, r := range d {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b = append(b, byte(r))
			continue
		}
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isWordRune says what a word is made of. Spacing marks count as part of a
// word because in scripts such as Devanagari they are vowels, not accents.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// tokenize appends the words of a folded string to dst. The words are
// substrings of s, so tokenizing allocates nothing beyond dst.
func tokenize(dst []string, s string) []string {
	start := -1
	for i, r := range s {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			dst = append(dst, s[start:i])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, s[start:])
	}
	return dst
}

// keyword is one configured keyword, folded: a single word, a phrase of
// several, or (for a keyword with no letters or digits, such as an emoji)
// a substring of the folded text.
type keyword struct {
	orig  string
	words []string
	sub   string
}

func compileKeyword(kw string) keyword {
	f := fold(strings.TrimSpace(kw))
	k := keyword{orig: kw, words: tokenize(nil, f)}
	if len(k.words) == 0 {
		k.sub = f
	}
	return k
}

// in reports whether the keyword occurs in the folded, tokenized text.
func (k *keyword) in(toks []string, folded string) bool {
	switch len(k.words) {
	case 0:
		return k.sub != "" && strings.Contains(folded, k.sub)
	case 1:
		for _, t := range toks {
			if t == k.words[0] {
				return true
			}
		}
		return false
	}
	for i := range toks {
		if hasWords(toks[i:], k.words) {
			return true
		}
	}
	return false
}

func hasWords(toks, words []string) bool {
	if len(toks) < len(words) {
		return false
	}
	for i, w := range words {
		if toks[i] != w {
			return false
		}
	}
	return true
}

// kwIndex maps words to the conditions whose keywords contain them, so that
// one pass over the message's words finds every keyword condition that
// holds, however many rules and keywords there are.
type kwIndex struct {
	single  map[string][]int32
	phrases map[string][]kwPhrase // by first word
	subs    []kwSub
}

type kwPhrase struct {
	cond int32
	rest []string
}

type kwSub struct {
	cond int32
	sub  string
}

func (ix *kwIndex) add(cond int32, k keyword) {
	switch len(k.words) {
	case 0:
		if k.sub != "" {
			ix.subs = append(ix.subs, kwSub{cond, k.sub})
		}
	case 1:
		if ix.single == nil {
			ix.single = map[string][]int32{}
		}
		list := ix.single[k.words[0]]
		if len(list) == 0 || list[len(list)-1] != cond {
			ix.single[k.words[0]] = append(list, cond)
		}
	default:
		if ix.phrases == nil {
			ix.phrases = map[string][]kwPhrase{}
		}
		ix.phrases[k.words[0]] = append(ix.phrases[k.words[0]], kwPhrase{cond, k.words[1:]})
	}
}

// scan sets the bit of every condition that has a keyword in the text.
func (ix *kwIndex) scan(toks []string, folded string, hits []uint64) {
	for i, t := range toks {
		for _, c := range ix.single[t] {
			hits[c>>6] |= 1 << (c & 63)
		}
		if ix.phrases != nil {
			for _, p := range ix.phrases[t] {
				if hasWords(toks[i+1:], p.rest) {
					hits[p.cond>>6] |= 1 << (p.cond & 63)
				}
			}
		}
	}
	for _, s := range ix.subs {
		if strings.Contains(folded, s.sub) {
			hits[s.cond>>6] |= 1 << (s.cond & 63)
		}
	}
}
