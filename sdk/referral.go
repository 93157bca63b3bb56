package sdk

import (
	"encoding/json"
	"strings"
)

// Referral is a Click-to-WhatsApp ad (or post) a customer came from, as
// Message.Referral carries it.
type Referral struct {
	SourceURL  string `json:"source_url,omitempty"`
	SourceID   string `json:"source_id,omitempty"`   // the ad id
	SourceType string `json:"source_type,omitempty"` // ad, post
	Headline   string `json:"headline,omitempty"`
	Body       string `json:"body,omitempty"`
	MediaType  string `json:"media_type,omitempty"`
	// CTWAClid is the click id Meta's Conversions API takes to attribute
	// a sale to the ad; absent for ads shown in WhatsApp Status.
	CTWAClid string `json:"ctwa_clid,omitempty"`
}

// ParseReferral reads a message's referral; ok is false without one.
func ParseReferral(raw json.RawMessage) (Referral, bool) {
	var r Referral
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil || (r.SourceID == "" && r.SourceURL == "" && r.Headline == "" && r.CTWAClid == "") {
		return Referral{}, false
	}
	return r, true
}

// Summary is the referral in one line, for a CRM's lead-source field or a
// note: `Click-to-WhatsApp ad 120226305854810726 "Chat with us" (ctwa_clid Aff-n8ZT…)`.
func (r Referral) Summary() string {
	kind := r.SourceType
	if kind == "" {
		kind = "ad"
	}
	parts := []string{"Click-to-WhatsApp " + kind}
	if r.SourceID != "" {
		parts = append(parts, r.SourceID)
	}
	if r.Headline != "" {
		parts = append(parts, `"`+r.Headline+`"`)
	}
	if r.CTWAClid != "" {
		parts = append(parts, "(ctwa_clid "+r.CTWAClid+")")
	}
	if r.SourceURL != "" {
		parts = append(parts, r.SourceURL)
	}
	return strings.Join(parts, " ")
}
