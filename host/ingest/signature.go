package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureHeader carries Meta's HMAC of the raw body.
const SignatureHeader = "X-Hub-Signature-256"

// Sign returns the X-Hub-Signature-256 value Meta would send for body under
// an app secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is a valid signature of the raw
// body under any of the secrets (several are accepted while an app secret is
// being rotated). The body must be the bytes as received: re-serialised JSON
// hashes differently.
func VerifySignature(header string, body []byte, secrets [][]byte) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	valid := false
	for _, secret := range secrets {
		if len(secret) == 0 {
			continue
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		// Check every secret, not just until the first match, so timing
		// does not tell which one signed.
		if hmac.Equal(mac.Sum(nil), got) {
			valid = true
		}
	}
	return valid
}
