package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers. net/http canonicalises header names, and
// HTTP compares them case-insensitively, so these match the lower-case
// names the convention writes.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock, either way, before Verify refuses it; the value the
// Standard Webhooks reference libraries use.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a base64 secret, as Standard Webhooks (and Svix)
// hand them out.
const secretPrefix = "whsec_"

// Errors Verify wraps, so that a receiver can answer them differently
// (and tests can tell them apart).
var (
	ErrMissingHeader = errors.New("webhook: missing header")
	ErrTimestamp     = errors.New("webhook: timestamp outside the tolerance")
	ErrSignature     = errors.New("webhook: no matching signature")
)

// DecodeSecret turns a configured secret into HMAC key bytes: a secret
// starting with "whsec_" is base64 after the prefix, as Standard Webhooks
// issues them, so that a receiver's off-the-shelf library configured with
// the same string agrees with us; any other secret is used as it is.
func DecodeSecret(s string) ([]byte, error) {
	if !strings.HasPrefix(s, secretPrefix) {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil {
		// Not wrapping err: its message quotes the offending input.
		return nil, errors.New(`starts with "whsec_" but the rest is not valid standard base64`)
	}
	if len(key) == 0 {
		return nil, errors.New(`starts with "whsec_" but has no key after it`)
	}
	return key, nil
}

// Sign returns the webhook-signature value for one message: "v1," and the
// base64 HMAC-SHA256 of id.timestamp.body under secret.
func Sign(secret []byte, id string, timestamp time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, strconv.FormatInt(timestamp.Unix(), 10), body))
}

// mac signs the timestamp exactly as the header carries it: re-formatting
// a parsed value could differ from what the sender signed ("+0", "01").
func mac(secret []byte, id, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Standard Webhooks request as a receiver must: the
// webhook-timestamp is within tolerance of now (either way: a replayed
// old request and a forged future one are both refused; tolerance <= 0
// means DefaultTolerance), and one of the space-separated "v1,"
// signatures in webhook-signature is the HMAC of id.timestamp.body under
// secret. Signatures of other versions are ignored, so that a sender may
// add schemes. body must be the raw request body, byte for byte.
//
// A receiver should also remember the webhook-id of what it accepted:
// the id stays the same when a delivery is retried, and a retry after a
// lost answer is a duplicate to be acknowledged, not processed again.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, ts, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	for _, h := range []struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sigs}} {
		if h.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, strings.ToLower(h.name))
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrTimestamp, strings.ToLower(HeaderTimestamp), ts)
	}
	// Compared as bounds on sec: subtracting an absurd timestamp from now
	// could overflow.
	limit := int64(tolerance / time.Second)
	if sec < now.Unix()-limit || sec > now.Unix()+limit {
		return fmt.Errorf("%w: %s %s is more than %s from now", ErrTimestamp, strings.ToLower(HeaderTimestamp), ts, tolerance)
	}
	want := mac(secret, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}
