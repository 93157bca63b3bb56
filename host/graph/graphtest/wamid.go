package graphtest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// newWAMID builds an id shaped like Meta's: "wamid." and the base64 of a
// small binary record holding the recipient and an 18-character hex id,
// e.g. wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA. The hex
// id is a per-server random prefix plus a counter, so ids never repeat
// within a server and practically never across servers.
func newWAMID(prefix string, seq uint64, recipient string) string {
	if len(recipient) > 120 {
		recipient = recipient[:120]
	}
	id := strings.ToUpper(fmt.Sprintf("%s%08x", prefix, uint32(seq)))
	rec := make([]byte, 0, 32+len(recipient))
	rec = append(rec, 0x1c, 0x18, byte(len(recipient)))
	rec = append(rec, recipient...)
	rec = append(rec, 0x15, 0x02, 0x00, 0x11, 0x18, byte(len(id)))
	rec = append(rec, id...)
	rec = append(rec, 0x00)
	return "wamid." + base64.StdEncoding.EncodeToString(rec)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)[:n]
}

// traceID looks like Meta's fbtrace_id.
func traceID() string {
	b := make([]byte, 17)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
