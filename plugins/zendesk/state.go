package zendesk

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// convRecord is conv:<conversation_id>: the conversation's current ticket.
type convRecord struct {
	// TicketID is the ticket of generation Gen; 0 while it is being
	// created (or not yet).
	TicketID int64 `json:"ticket_id,omitempty"`
	// Gen counts the tickets the conversation has had: a new one starts
	// when the last was closed or solved too long ago.
	Gen int `json:"gen"`
	// OpenedBy is the event whose message opens the ticket of Gen: when a
	// retry of it finds the ticket by external_id, its comment is there.
	OpenedBy      string `json:"opened_by,omitempty"`
	To            string `json:"to,omitempty"`
	PhoneNumberID string `json:"phone_number_id,omitempty"`
}

// ticketRecord is ticket:<id>: whom an agent's reply on it goes to.
type ticketRecord struct {
	ConversationID string `json:"conversation_id"`
	To             string `json:"to"`
	PhoneNumberID  string `json:"phone_number_id,omitempty"`
	RequesterID    int64  `json:"requester_id,omitempty"`
}

// eventRecord is evt:<event id>: the event's comment is on ticket TicketID
// (Done) or is being written there since At (Unix seconds).
type eventRecord struct {
	TicketID int64 `json:"ticket_id"`
	Done     bool  `json:"done,omitempty"`
	At       int64 `json:"at,omitempty"`
}

// commentRecord is cmt:<comment id>: what became of an agent's comment.
type commentRecord struct {
	// State is "sent" (the hub took it), "refused" (the hub refused it;
	// the note for the agent may still be missing) or "noted" (refused,
	// and the note is on the ticket).
	State   string `json:"state"`
	Message string `json:"message_id,omitempty"`
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func convKey(id string) string       { return "conv:" + id }
func ticketKey(id int64) string      { return "ticket:" + strconv.FormatInt(id, 10) }
func userKey(key string) string      { return "user:" + key }
func eventKey(id string) string      { return "evt:" + id }
func commentKey(id int64) string     { return "cmt:" + strconv.FormatInt(id, 10) }
func externalUserID(k string) string { return "whatsapp:" + k }

// ticketExternalID names the gen-th ticket of a conversation.
func ticketExternalID(conv string, gen int) string {
	if gen <= 1 {
		return conv
	}
	return conv + "/" + strconv.Itoa(gen)
}

// parseTicketExternalID is the inverse of ticketExternalID; ok is false
// for an empty external_id.
func parseTicketExternalID(ext string) (conv string, gen int, ok bool) {
	if ext == "" {
		return "", 0, false
	}
	if i := strings.LastIndexByte(ext, '/'); i > 0 {
		if n, err := strconv.Atoi(ext[i+1:]); err == nil && n >= 2 && ext[i+1:] == strconv.Itoa(n) {
			return ext[:i], n, true
		}
	}
	return ext, 1, true
}

// getJSON reads a KV record; found is false when the key is absent.
func getJSON(ctx context.Context, kv sdk.KV, key string, v any) (bool, error) {
	raw, found, err := kv.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("read %s from the hub's KV: %w", key, err)
	}
	if !found {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("KV %s holds %q, not this connector's record: %w", key, raw, err)
	}
	return true, nil
}

func putJSON(ctx context.Context, kv sdk.KV, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := kv.Put(ctx, key, raw); err != nil {
		return fmt.Errorf("write %s to the hub's KV: %w", key, err)
	}
	return nil
}
