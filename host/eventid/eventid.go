// Package eventid derives the stable id of a logged event from its natural
// key. It stands alone so that the ingest stage (which names events) and
// the store (which looks an earlier message up by its wamid) share one
// derivation without importing each other.
package eventid

import (
	"crypto/sha256"
	"encoding/base32"
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// For is "evt_" + lowercase unpadded base32 of the first 16 bytes of
// sha256(naturalKey). The derivation is part of the log's format: changing
// it would make every retried webhook look new.
func For(naturalKey string) string {
	sum := sha256.Sum256([]byte(naturalKey))
	return "evt_" + encoding.EncodeToString(sum[:16])
}

// Message is the id of the message.* event of an inbound message.
func Message(wamid string) string { return For("m:" + wamid) }
