package templates

import (
	"encoding/json"
	"strings"
)

// Webhook event types that change the catalogue (whatsapp.<field>).
const (
	EventStatus   = "whatsapp.message_template_status_update"
	EventCategory = "whatsapp.template_category_update"
	EventQuality  = "whatsapp.message_template_quality_update"
)

// Update is what one template webhook says about one template. Empty
// fields change nothing.
type Update struct {
	ID, Name, Language string
	Status, Reason     string
	Category           string
	Quality            string
}

// statusOf maps a message_template_status_update event to the status the
// template has after it.
var statusOf = map[string]string{
	"APPROVED": "APPROVED", "REINSTATED": "APPROVED", "UNARCHIVED": "APPROVED",
	"FLAGGED": "FLAGGED", "PAUSED": "PAUSED", "DISABLED": "DISABLED",
	"REJECTED": "REJECTED", "PENDING": "PENDING", "IN_APPEAL": "IN_APPEAL",
	"PENDING_DELETION": "PENDING_DELETION", "DELETED": "DELETED", "ARCHIVED": "ARCHIVED",
	"LIMIT_EXCEEDED": "LIMIT_EXCEEDED", "LOCKED": "LOCKED",
}

// FromWebhook reads a template webhook's value (the event's raw). ok is
// false for other event types and for values that name no template.
func FromWebhook(eventType string, raw json.RawMessage) (u Update, ok bool) {
	var v struct {
		Event       string          `json:"event"`
		ID          json.RawMessage `json:"message_template_id"`
		Name        string          `json:"message_template_name"`
		Language    string          `json:"message_template_language"`
		Reason      string          `json:"reason"`
		Category    string          `json:"message_template_category"`
		NewCategory string          `json:"new_category"`
		Previous    string          `json:"previous_category"`
		NewQuality  string          `json:"new_quality_score"`
		OtherInfo   *struct {
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"other_info"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Name == "" || v.Language == "" {
		return Update{}, false
	}
	u = Update{ID: strings.Trim(string(v.ID), `"`), Name: v.Name, Language: NormalizeLanguage(v.Language)}
	if u.ID == "null" {
		u.ID = ""
	}
	switch eventType {
	case EventStatus:
		s, known := statusOf[strings.ToUpper(v.Event)]
		if !known {
			return Update{}, false
		}
		u.Status, u.Category = s, strings.ToUpper(v.Category)
		u.Reason = v.Reason
		if v.OtherInfo != nil && v.OtherInfo.Description != "" {
			u.Reason = strings.TrimSpace(v.OtherInfo.Title + ": " + v.OtherInfo.Description)
		}
	case EventCategory:
		// An impending change names the current category as new_category
		// too, so new_category is right either way.
		if v.NewCategory == "" {
			return Update{}, false
		}
		u.Category = strings.ToUpper(v.NewCategory)
	case EventQuality:
		if v.NewQuality == "" {
			return Update{}, false
		}
		u.Quality = strings.ToUpper(v.NewQuality)
	default:
		return Update{}, false
	}
	return u, true
}
