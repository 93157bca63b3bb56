package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/host/eventid"
	"github.com/wahub/wahub/sdk"
)

// ErrNotEnvelope: the body is not JSON, or not an object whose "object" is
// "whatsapp_business_account". It is the only error Parse returns; anything
// inside a valid envelope becomes an event, because answering 400 to Meta
// would make it retry a body that can never get better, and dropping part of
// a batch would lose customer messages.
var ErrNotEnvelope = errors.New(`ingest: not a WhatsApp webhook envelope (want a JSON object with "object": "whatsapp_business_account")`)

const envelopeObject = "whatsapp_business_account"

// fieldUnknown names, in an event type, a part of the envelope that has no
// changes[].field to name it (an entry that is not an object, a change
// without a field).
const fieldUnknown = "unknown"

// maxUnix is 9999-12-31T23:59:59Z. A later OccurredAt would make
// time.Time.MarshalJSON fail, and with it the store's append of the whole
// body, so Meta would retry it for a week.
const maxUnix = 253402300799

// EventID derives the stable event id from a natural key (package eventid
// owns the derivation).
func EventID(naturalKey string) string { return eventid.For(naturalKey) }

// Parse turns one webhook body into events, in body order (entry, then
// change, then item). received is the hub's receive time (set as ReceivedAt
// on every event).
//
// It iterates every entry, change and item: Meta batches up to 1,000 items
// per POST. Whatever it cannot model still becomes an event (type
// "whatsapp.<field>", the bytes in Raw), so a body Meta sends is never
// partly lost.
func Parse(body []byte, received time.Time) ([]sdk.Event, error) {
	b := trimSpace(body)
	// One validation up front lets the walk below split the body with a
	// plain byte scan instead of re-validating every level.
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
		return nil, ErrNotEnvelope
	}
	var object, entries []byte
	for k, v := range objectFields(b) {
		switch string(k) {
		case "object":
			object = v
		case "entry":
			entries = v
		}
	}
	if s, ok := jsonString(object); !ok || s != envelopeObject {
		return nil, ErrNotEnvelope
	}
	p := &parser{received: received.UTC()}
	switch kind(entries) {
	case 0, 'n':
	case '[':
		for e := range arrayElements(entries) {
			p.entry(e)
		}
	default:
		p.opaque(&entryCtx{at: p.received}, fieldUnknown, entries, nil)
	}
	return p.events, nil
}

type parser struct {
	received time.Time
	events   []sdk.Event
	buf      bytes.Buffer // scratch for json.Compact
}

// entryCtx is what an entry contributes to the events of its changes.
type entryCtx struct {
	id      string
	timeKey string    // entry.time as written, for natural keys
	at      time.Time // entry.time, or the receive time without one
}

// valueCtx is what a change's value contributes to the events of its items.
type valueCtx struct {
	field    string
	biz      sdk.Business
	contacts []wireContact
}

func (vc *valueCtx) business() *sdk.Business {
	if vc.biz == (sdk.Business{}) {
		return nil
	}
	b := vc.biz // a copy per event: a consumer editing one must not edit all
	return &b
}

func (p *parser) entry(e []byte) {
	if e[0] != '{' {
		p.opaque(&entryCtx{at: p.received}, fieldUnknown, e, nil)
		return
	}
	ec := entryCtx{at: p.received}
	var changes []byte
	for k, v := range objectFields(e) {
		switch string(k) {
		case "id":
			ec.id = scalar(v)
		case "time":
			ec.timeKey = scalar(v)
			ec.at = p.timeOr(v)
		case "changes":
			changes = v
		}
	}
	if kind(changes) != '[' {
		// Not a shape WhatsApp sends; keep the whole entry.
		p.opaque(&ec, fieldUnknown, e, nil)
		return
	}
	for c := range arrayElements(changes) {
		p.change(&ec, c)
	}
}

func (p *parser) change(ec *entryCtx, c []byte) {
	if c[0] != '{' {
		p.opaque(ec, fieldUnknown, c, nil)
		return
	}
	var field string
	var value []byte
	for k, v := range objectFields(c) {
		switch string(k) {
		case "field":
			field, _ = jsonString(v)
		case "value":
			value = v
		}
	}
	if field == "" {
		field = fieldUnknown
	}
	switch kind(value) {
	case '{':
	case 0, 'n':
		p.opaque(ec, field, c, nil)
		return
	default:
		p.opaque(ec, field, value, nil)
		return
	}

	vc := valueCtx{field: field, biz: sdk.Business{WABAID: ec.id}}
	var contacts, messages, statuses, prefs, errs []byte
	for k, v := range objectFields(value) {
		switch string(k) {
		case "metadata":
			if kind(v) == '{' {
				for mk, mv := range objectFields(v) {
					switch string(mk) {
					case "phone_number_id":
						vc.biz.PhoneNumberID = scalar(mv)
					case "display_phone_number":
						if s := scalar(mv); s != "" {
							vc.biz.DisplayPhoneNumber = s
						}
					}
				}
			}
		case "display_phone_number":
			// Fields without metadata (quality updates, ...) name the
			// number here; metadata wins when both exist.
			if vc.biz.DisplayPhoneNumber == "" {
				vc.biz.DisplayPhoneNumber = scalar(v)
			}
		case "contacts":
			contacts = v
		case "messages":
			messages = v
		case "statuses":
			statuses = v
		case "user_preferences":
			prefs = v
		case "errors":
			errs = v
		}
	}
	if field != "messages" && field != "user_preferences" {
		p.opaque(ec, field, value, vc.business())
		return
	}
	if kind(contacts) == '[' {
		// Type mismatches inside leave fields empty, which is what we want.
		_ = json.Unmarshal(contacts, &vc.contacts)
	}

	recognized, malformed := false, false
	items := func(list []byte, fn func(*entryCtx, *valueCtx, []byte)) {
		switch kind(list) {
		case 0, 'n':
		case '[':
			recognized = true
			for it := range arrayElements(list) {
				fn(ec, &vc, it)
			}
		default:
			malformed = true
		}
	}
	items(messages, p.message)
	items(statuses, p.status)
	items(prefs, p.preference)
	if k := kind(errs); k != 0 && k != 'n' {
		recognized = true
		key := "e:" + ec.id + ":" + field + ":" + ec.timeKey + ":" + p.hash(value)
		p.add(sdk.Event{
			ID:         EventID(key),
			Type:       sdk.FieldType("errors"),
			OccurredAt: ec.at,
			Business:   vc.business(),
		}, value)
	}
	// A list that is not a list, or a value with none of the lists (a shape
	// WhatsApp may add later): keep the whole value rather than lose it.
	if malformed || !recognized {
		p.opaque(ec, field, value, vc.business())
	}
}

// opaque records raw as a "whatsapp.<field>" event keyed by its content.
func (p *parser) opaque(ec *entryCtx, field string, raw []byte, biz *sdk.Business) {
	if biz == nil && ec.id != "" {
		biz = &sdk.Business{WABAID: ec.id}
	}
	key := "f:" + ec.id + ":" + field + ":" + ec.timeKey + ":" + p.hash(raw)
	p.add(sdk.Event{
		ID:         EventID(key),
		Type:       sdk.FieldType(field),
		OccurredAt: ec.at,
		Business:   biz,
	}, raw)
}

func (p *parser) add(ev sdk.Event, raw []byte) {
	ev.ReceivedAt = p.received
	// A copy, so that an event kept for long does not pin the whole body.
	ev.Raw = bytes.Clone(raw)
	p.events = append(p.events, ev)
}

// hash is the hex sha256 of raw compacted, so that a re-indented copy of
// the same JSON gets the same id.
func (p *parser) hash(raw []byte) string {
	p.buf.Reset()
	src := raw
	if json.Compact(&p.buf, raw) == nil {
		src = p.buf.Bytes()
	}
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

func (p *parser) timeOr(raw []byte) time.Time {
	if t, ok := parseUnix(raw); ok {
		return t
	}
	return p.received
}

// The wire shapes below name only what wahub reads; the rest stays in Raw.
// They are decoded with encoding/json, which on a type mismatch leaves that
// field empty and carries on, so one odd field never costs the item.

type wireContact struct {
	WAID    string `json:"wa_id"`
	UserID  string `json:"user_id"`
	Profile struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"profile"`
}

type wireError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type wireMedia struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	URL      string `json:"url"`
	Voice    bool   `json:"voice"`
	Animated bool   `json:"animated"`
}

type wireReply struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

type wireMessage struct {
	From       string          `json:"from"`
	FromUserID string          `json:"from_user_id"`
	ID         string          `json:"id"`
	Timestamp  json.RawMessage `json:"timestamp"`
	Type       string          `json:"type"`
	Context    *struct {
		ID                  string `json:"id"`
		From                string `json:"from"`
		Forwarded           bool   `json:"forwarded"`
		FrequentlyForwarded bool   `json:"frequently_forwarded"`
	} `json:"context"`
	Text *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image    *wireMedia `json:"image"`
	Audio    *wireMedia `json:"audio"`
	Video    *wireMedia `json:"video"`
	Document *wireMedia `json:"document"`
	Sticker  *wireMedia `json:"sticker"`
	Location *struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
		Name      string  `json:"name"`
		Address   string  `json:"address"`
		URL       string  `json:"url"`
	} `json:"location"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Contacts []struct {
		Name struct {
			FormattedName string `json:"formatted_name"`
			FirstName     string `json:"first_name"`
			LastName      string `json:"last_name"`
		} `json:"name"`
		Phones []struct {
			Phone string `json:"phone"`
		} `json:"phones"`
		Emails []struct {
			Email string `json:"email"`
		} `json:"emails"`
		Org struct {
			Company string `json:"company"`
		} `json:"org"`
	} `json:"contacts"`
	Interactive *struct {
		ButtonReply *wireReply `json:"button_reply"`
		ListReply   *wireReply `json:"list_reply"`
		NfmReply    *struct {
			Body string `json:"body"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Button *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Order *struct {
		Text string `json:"text"`
	} `json:"order"`
	System *struct {
		Type    string `json:"type"`
		Body    string `json:"body"`
		WAID    string `json:"wa_id"`
		NewWAID string `json:"new_wa_id"` // older customer_changed_number payloads
	} `json:"system"`
	Unsupported *struct {
		Type string `json:"type"`
	} `json:"unsupported"`
	Referral json.RawMessage `json:"referral"`
	Errors   []wireError     `json:"errors"`
}

func (p *parser) message(ec *entryCtx, vc *valueCtx, item []byte) {
	if item[0] != '{' {
		p.opaque(ec, vc.field, item, vc.business())
		return
	}
	var m wireMessage
	_ = json.Unmarshal(item, &m)

	typ := sdk.TypeMessageReceived
	msg := &sdk.Message{ID: m.ID, Type: m.Type}
	switch m.Type {
	case "text":
		if m.Text != nil {
			msg.Text = m.Text.Body
		}
	case "image", "audio", "video", "document", "sticker":
		if md := m.media(); md != nil {
			msg.Media = &sdk.Media{
				ID: md.ID, MimeType: md.MimeType, SHA256: md.SHA256, Caption: md.Caption,
				Filename: md.Filename, URL: md.URL, Voice: md.Voice, Animated: md.Animated,
			}
			msg.Text = md.Caption
		}
	case "location":
		if l := m.Location; l != nil {
			msg.Location = &sdk.Location{Latitude: l.Latitude, Longitude: l.Longitude, Name: l.Name, Address: l.Address, URL: l.URL}
		}
	case "reaction":
		if r := m.Reaction; r != nil {
			msg.Reaction = &sdk.Reaction{MessageID: r.MessageID, Emoji: r.Emoji}
		}
	case "contacts":
		for _, c := range m.Contacts {
			sc := sdk.SharedContact{Name: c.Name.FormattedName, Org: c.Org.Company}
			if sc.Name == "" {
				sc.Name = strings.TrimSpace(c.Name.FirstName + " " + c.Name.LastName)
			}
			for _, ph := range c.Phones {
				if ph.Phone != "" {
					sc.Phones = append(sc.Phones, ph.Phone)
				}
			}
			for _, em := range c.Emails {
				if em.Email != "" {
					sc.Emails = append(sc.Emails, em.Email)
				}
			}
			msg.Contacts = append(msg.Contacts, sc)
		}
	case "interactive":
		if in := m.Interactive; in != nil {
			switch {
			case in.ButtonReply != nil:
				typ = sdk.TypeButtonClicked
				msg.Button = &sdk.Button{ID: in.ButtonReply.ID, Title: in.ButtonReply.Title}
				msg.Text = in.ButtonReply.Title
			case in.ListReply != nil:
				typ = sdk.TypeButtonClicked
				msg.Button = &sdk.Button{ID: in.ListReply.ID, Title: in.ListReply.Title, Description: in.ListReply.Description}
				msg.Text = in.ListReply.Title
			case in.NfmReply != nil:
				msg.Text = in.NfmReply.Body
			}
		}
	case "button":
		typ = sdk.TypeButtonClicked
		if b := m.Button; b != nil {
			id := b.Payload
			if id == "" {
				id = b.Text // Meta documents the payload as the label unless one was set
			}
			msg.Button = &sdk.Button{ID: id, Title: b.Text}
			msg.Text = b.Text
		}
	case "order":
		if m.Order != nil {
			msg.Text = m.Order.Text
		}
	case "system":
		typ = sdk.TypeContactChanged
		if s := m.System; s != nil {
			msg.System = &sdk.System{Type: s.Type, Body: s.Body, NewWAID: s.WAID}
			if msg.System.NewWAID == "" {
				msg.System.NewWAID = s.NewWAID
			}
		}
	case "unsupported":
		if m.Unsupported != nil {
			msg.Unsupported = m.Unsupported.Type
		}
	}
	if c := m.Context; c != nil && (c.ID != "" || c.From != "" || c.Forwarded || c.FrequentlyForwarded) {
		msg.Context = &sdk.Context{ID: c.ID, From: c.From, Forwarded: c.Forwarded, FrequentlyForwarded: c.FrequentlyForwarded}
	}
	if len(m.Referral) > 0 && string(m.Referral) != "null" {
		msg.Referral = m.Referral
	}
	msg.Errors = convertErrors(m.Errors)

	key := "m:" + m.ID
	if m.ID == "" {
		key = "m#" + p.hash(item)
	}
	p.add(sdk.Event{
		ID:         EventID(key),
		Type:       typ,
		OccurredAt: p.timeOr(m.Timestamp),
		Business:   vc.business(),
		Contact:    contactFor(vc.contacts, m.From, m.FromUserID),
		Message:    msg,
	}, item)
}

func (m *wireMessage) media() *wireMedia {
	switch m.Type {
	case "image":
		return m.Image
	case "audio":
		return m.Audio
	case "video":
		return m.Video
	case "document":
		return m.Document
	case "sticker":
		return m.Sticker
	}
	return nil
}

type wireStatus struct {
	ID                     string          `json:"id"`
	Status                 string          `json:"status"`
	Timestamp              json.RawMessage `json:"timestamp"`
	RecipientID            string          `json:"recipient_id"`
	RecipientUserID        string          `json:"recipient_user_id"`
	RecipientParticipantID string          `json:"recipient_participant_id"`
	Errors                 []wireError     `json:"errors"`
	Pricing                struct {
		Category string `json:"category"`
	} `json:"pricing"`
}

func (p *parser) status(ec *entryCtx, vc *valueCtx, item []byte) {
	if item[0] != '{' {
		p.opaque(ec, vc.field, item, vc.business())
		return
	}
	var s wireStatus
	_ = json.Unmarshal(item, &s)

	var typ sdk.EventType
	switch s.Status {
	case "sent":
		typ = sdk.TypeStatusSent
	case "delivered":
		typ = sdk.TypeStatusDelivered
	case "read":
		typ = sdk.TypeStatusRead
	case "failed":
		typ = sdk.TypeStatusFailed
	case "played":
		typ = sdk.TypeStatusPlayed
	default:
		typ = sdk.FieldType("statuses")
	}
	// One wamid legitimately gets sent, delivered and read (and, in a group,
	// one of each per participant): each is its own event.
	var key string
	if s.ID != "" && s.Status != "" {
		key = "s:" + s.ID + ":" + s.Status
		if s.RecipientParticipantID != "" {
			key += ":" + s.RecipientParticipantID
		}
	} else {
		key = "s#" + p.hash(item)
	}
	p.add(sdk.Event{
		ID:         EventID(key),
		Type:       typ,
		OccurredAt: p.timeOr(s.Timestamp),
		Business:   vc.business(),
		Contact:    contactFor(vc.contacts, s.RecipientID, s.RecipientUserID),
		Status: &sdk.Status{
			MessageID: s.ID,
			Status:    s.Status,
			Errors:    convertErrors(s.Errors),
			Category:  s.Pricing.Category,

			ParticipantID: s.RecipientParticipantID,
		},
	}, item)
}

type wirePreference struct {
	WAID      string          `json:"wa_id"`
	UserID    string          `json:"user_id"`
	Detail    string          `json:"detail"`
	Category  string          `json:"category"`
	Value     string          `json:"value"`
	Timestamp json.RawMessage `json:"timestamp"`
}

func (p *parser) preference(ec *entryCtx, vc *valueCtx, item []byte) {
	if item[0] != '{' {
		p.opaque(ec, vc.field, item, vc.business())
		return
	}
	var u wirePreference
	_ = json.Unmarshal(item, &u)

	typ := sdk.FieldType("user_preferences")
	switch u.Value {
	case "stop":
		typ = sdk.TypeOptinRevoked
	case "resume":
		typ = sdk.TypeOptinGranted
	}
	who := u.WAID
	if who == "" {
		who = u.UserID
	}
	var key string
	if who != "" {
		key = "p:" + vc.biz.PhoneNumberID + ":" + who + ":" + u.Category + ":" + u.Value + ":" + scalar(u.Timestamp)
	} else {
		key = "p#" + p.hash(item)
	}
	p.add(sdk.Event{
		ID:         EventID(key),
		Type:       typ,
		OccurredAt: p.timeOr(u.Timestamp),
		Business:   vc.business(),
		Contact:    contactFor(vc.contacts, u.WAID, u.UserID),
		Preference: &sdk.Preference{Category: u.Category, Value: u.Value, Detail: u.Detail},
	}, item)
}

// contactFor builds the customer from an item's own ids, completed by the
// value's contacts[] element for the same person. It is nil when neither id
// is known: sdk.Contact promises at least one.
func contactFor(contacts []wireContact, waID, userID string) *sdk.Contact {
	ct := sdk.Contact{WAID: waID, UserID: userID}
	if c := matchContact(contacts, waID, userID); c != nil {
		if ct.WAID == "" {
			ct.WAID = c.WAID
		}
		if ct.UserID == "" {
			ct.UserID = c.UserID
		}
		ct.Name = c.Profile.Name
		ct.Username = c.Profile.Username
	}
	if ct.WAID == "" && ct.UserID == "" {
		return nil
	}
	return &ct
}

func matchContact(contacts []wireContact, waID, userID string) *wireContact {
	for i := range contacts {
		c := &contacts[i]
		if (waID != "" && c.WAID == waID) || (userID != "" && c.UserID == userID) {
			return c
		}
	}
	// A lone contact is the sender unless an id says otherwise; a match on
	// an id already returned above, so both sides set means they differ —
	// unless the two wa_ids are one number written two ways ("+55 11
	// 98765-0001", or Brazil's and Mexico's mobile prefixes, which Meta
	// writes with and without), when the profile is still the sender's.
	if len(contacts) == 1 {
		c := &contacts[0]
		if c.UserID != "" && userID != "" {
			return nil
		}
		if c.WAID == "" || waID == "" || samePhone(c.WAID, waID) {
			return c
		}
	}
	return nil
}

// samePhone reports whether two wa_ids are the same number: equal digits,
// or equal once the mobile marker some countries' numbers are written with
// or without is dropped (Brazil: 55 + area code + 9 + 8 digits; Mexico:
// 52 1; Argentina: 54 9).
func samePhone(a, b string) bool {
	a, b = digitsOnly(a), digitsOnly(b)
	if a == "" || b == "" {
		return false
	}
	return a == b || canonicalMobile(a) == canonicalMobile(b)
}

func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

func canonicalMobile(d string) string {
	switch {
	case strings.HasPrefix(d, "55") && len(d) == 13 && d[4] == '9':
		return d[:4] + d[5:]
	case strings.HasPrefix(d, "521") && len(d) == 13:
		return "52" + d[3:]
	case strings.HasPrefix(d, "549") && len(d) == 13:
		return "54" + d[3:]
	}
	return d
}

func convertErrors(in []wireError) []sdk.Error {
	if len(in) == 0 {
		return nil
	}
	out := make([]sdk.Error, len(in))
	for i, e := range in {
		out[i] = sdk.Error{Code: e.Code, Title: e.Title, Message: e.Message, Details: e.ErrorData.Details}
	}
	return out
}

// parseUnix reads Unix seconds written as a JSON string (messages,
// statuses) or number (entry.time, user_preferences).
func parseUnix(raw []byte) (time.Time, bool) {
	s := strings.TrimSpace(scalar(raw))
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > maxUnix {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= maxUnix) { // also refuses NaN
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// The helpers below walk JSON that json.Valid has accepted. They still
// check every bound, so that a mistake costs an event, never a panic.

// kind is the first byte of a JSON value, or 0 for none.
func kind(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// scalar is a JSON string's contents or a number's literal text, "" for
// anything else: ids and times arrive as either.
func scalar(v []byte) string {
	switch k := kind(v); {
	case k == '"':
		s, _ := jsonString(v)
		return s
	case k == '-' || (k >= '0' && k <= '9'):
		return string(v)
	}
	return ""
}

func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	j := i + 1
	for j < len(b) {
		// IndexByte is vectorised; strings are most of a webhook's bytes.
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return len(b)
		}
		j += q
		escapes := 0
		for k := j - 1; k > i && b[k] == '\\'; k-- {
			escapes++
		}
		if escapes%2 == 0 {
			return j + 1
		}
		j++
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != ']' && b[j] != '}' {
			j++
		}
		return j
	}
}

// objectFields yields the members of the object b, keys unescaped, values
// as their raw bytes. A key given twice is yielded twice; callers keep the
// last, as encoding/json does.
func objectFields(b []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		if kind(b) != '{' {
			return
		}
		i := 1
		for {
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != '"' {
				return
			}
			end := skipString(b, i)
			if end-1 <= i {
				return
			}
			key := b[i+1 : end-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				if s, ok := jsonString(b[i:end]); ok {
					key = []byte(s)
				}
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return
			}
			i = skipSpace(b, i+1)
			j := skipValue(b, i)
			if j <= i {
				return
			}
			if !yield(key, b[i:j]) {
				return
			}
			i = skipSpace(b, j)
			if i >= len(b) || b[i] != ',' {
				return
			}
			i++
		}
	}
}

// arrayElements yields the elements of the array b as their raw bytes.
func arrayElements(b []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if kind(b) != '[' {
			return
		}
		i := 1
		for {
			i = skipSpace(b, i)
			if i >= len(b) || b[i] == ']' {
				return
			}
			j := skipValue(b, i)
			if j <= i {
				return
			}
			if !yield(b[i:j]) {
				return
			}
			i = skipSpace(b, j)
			if i >= len(b) || b[i] != ',' {
				return
			}
			i++
		}
	}
}
