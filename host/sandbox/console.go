package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/host/console"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// The console's sandbox page: the fakes' content the way a person reads
// it, and the other side's moves (an agent answering in Slack or Zendesk,
// a customer writing on WhatsApp).

// The fakes the console reads and plays, found by what they are: each
// built-in connector declares its own (package builtin).
func (s *Sandbox) slack() *slacktest.Server {
	f, _ := s.fakes["slack"].Handler.(*slacktest.Server)
	return f
}

func (s *Sandbox) zendesk() *zendesktest.Server {
	f, _ := s.fakes["zendesk"].Handler.(*zendesktest.Server)
	return f
}

func (s *Sandbox) webhook() *webhooktest.Receiver {
	f, _ := s.fakes["webhook"].Handler.(*webhooktest.Receiver)
	return f
}

// ConsoleView shapes what the fakes hold for reading.
func (s *Sandbox) ConsoleView() console.SandboxView {
	var v console.SandboxView
	status := map[string]string{}
	for _, st := range s.Graph.Statuses() {
		status[st.WAMID] = st.Status
	}
	chats := map[string]*console.SandboxChat{}
	var order []string
	for _, m := range s.Graph.Sent() {
		to := "+" + strings.TrimPrefix(m.To, "+")
		if m.UserID != "" && m.WAID == "" {
			to = m.UserID
		}
		if chats[to] == nil {
			chats[to] = &console.SandboxChat{To: to}
			order = append(order, to)
		}
		text := m.Text
		if text == "" && m.Template != "" {
			text = "[template " + m.Template + " " + m.Language + "]"
		}
		if text == "" {
			text = "[" + m.Kind + "]"
		}
		st := status[m.WAMID]
		if st == "" {
			st = "accepted"
		}
		chats[to].Messages = append(chats[to].Messages, console.SandboxMessage{From: "business", Text: text, At: m.Time, Status: st})
	}
	for _, to := range order {
		v.WhatsApp = append(v.WhatsApp, *chats[to])
	}

	channels := map[string]*console.SandboxChannel{}
	threads := map[string]*console.SandboxThread{}
	var msgs []slacktest.Message
	files := map[string]slacktest.File{}
	if sl := s.slack(); sl != nil {
		msgs = sl.Messages()
		for _, f := range sl.Files() {
			files[f.ID] = f
		}
	}
	for _, m := range msgs {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			continue
		}
		ch := channels[m.Channel]
		if ch == nil {
			ch = &console.SandboxChannel{Channel: m.Channel}
			channels[m.Channel] = ch
		}
		ch.Threads = append(ch.Threads, console.SandboxThread{TS: m.TS, Root: slackMessage(m, files)})
	}
	for _, ch := range channels {
		for i := range ch.Threads {
			threads[ch.Channel+"/"+ch.Threads[i].TS] = &ch.Threads[i]
		}
	}
	for _, m := range msgs {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			continue
		}
		if t := threads[m.Channel+"/"+m.ThreadTS]; t != nil {
			t.Replies = append(t.Replies, slackMessage(m, files))
		}
	}
	names := make([]string, 0, len(channels))
	for n := range channels {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v.Slack = append(v.Slack, *channels[n])
	}

	var tickets []zendesktest.Ticket
	if zd := s.zendesk(); zd != nil {
		tickets = zd.Tickets()
	}
	for _, t := range tickets {
		tk := console.SandboxTicket{System: "zendesk", ID: t.ID, Subject: t.Subject, Requester: t.Requester, Status: t.Status}
		for _, c := range t.Comments {
			from := c.Author
			if !c.Public {
				from += " (internal note)"
			}
			tk.Comments = append(tk.Comments, console.SandboxMessage{From: from, Text: c.Body, At: c.CreatedAt})
		}
		v.Tickets = append(v.Tickets, tk)
	}
	for _, sys := range []string{"hubspot", "bitrix24", "freshdesk"} {
		if f, ok := s.fakes[sys]; ok {
			v.Records = append(v.Records, records(sys, f.Snapshot())...)
		}
	}
	if wh := s.webhook(); wh != nil {
		for _, d := range wh.Received() {
			v.Webhooks = append(v.Webhooks, console.SandboxDelivery{ID: d.ID, Type: string(d.Event.Type), Valid: d.Valid, At: d.Event.ReceivedAt})
		}
	}
	return v
}

func slackMessage(m slacktest.Message, files map[string]slacktest.File) console.SandboxMessage {
	text := m.Text
	for _, id := range m.Files {
		// A file the bot shared: what it is and its digest, to compare
		// with what the customer sent.
		f := files[id]
		line := fmt.Sprintf("[file %s, %s, %d bytes, sha256 %.12s…]", f.Name, f.Mimetype, f.Size, f.SHA256)
		text = strings.TrimSpace(text + "\n" + line)
	}
	from := m.User
	if m.BotID != "" || from == "" {
		from = "wahub"
	}
	at := time.Time{}
	if f, err := strconv.ParseFloat(m.TS, 64); err == nil {
		at = time.UnixMicro(int64(f * 1e6))
	}
	return console.SandboxMessage{From: from, Text: text, At: at}
}

// records turns a CRM fake's snapshot into records: every list of
// objects in it is a kind of record, each object one record with its
// plain fields (nested properties one level down).
func records(system string, snap any) []console.SandboxRecord {
	b, err := json.Marshal(snap)
	if err != nil {
		return nil
	}
	var top map[string]any
	if json.Unmarshal(b, &top) != nil {
		return nil
	}
	var out []console.SandboxRecord
	kinds := make([]string, 0, len(top))
	for k := range top {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		list, ok := top[kind].([]any)
		if !ok || bookkeeping[kind] {
			continue
		}
		for _, it := range list {
			obj, ok := it.(map[string]any)
			if !ok {
				continue
			}
			r := console.SandboxRecord{System: system, Kind: strings.TrimSuffix(kind, "s")}
			flatten("", obj, &r.Fields)
			r.Title = title(r.Fields)
			out = append(out, r)
		}
	}
	return out
}

// bookkeeping are the lists of a fake's snapshot that record its own
// traffic rather than the records an agent would look at.
var bookkeeping = map[string]bool{"recent": true, "requests": true, "calls": true, "webhooks": true, "errors": true}

// noise are fields a person reading a record skips: internal ids,
// modification stamps and links between objects.
func noise(name string) bool {
	switch name {
	case "associations", "searchable_at", "updated_at", "hs_object_id", "lastmodifieddate", "createdate", "hs_lastmodifieddate":
		return true
	}
	return strings.HasSuffix(name, "_id") && name != "external_id"
}

func flatten(prefix string, obj map[string]any, into *[]console.SandboxField) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if !noise(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := obj[k].(type) {
		case map[string]any:
			if prefix == "" {
				// HubSpot's properties are the record itself.
				flatten(strings.TrimPrefix(k+".", "properties."), v, into)
			}
		case []any:
			if len(v) > 0 {
				b, _ := json.Marshal(v)
				*into = append(*into, console.SandboxField{Name: prefix + k, Value: clip(string(b), 200)})
			}
		case nil:
		default:
			if s := fmt.Sprint(v); s != "" {
				*into = append(*into, console.SandboxField{Name: prefix + k, Value: clip(s, 200)})
			}
		}
	}
}

func title(fs []console.SandboxField) string {
	for _, want := range []string{"firstname", "name", "NAME", "TITLE", "subject", "title", "hs_communication_body", "comment", "COMMENT", "phone", "email", "id", "ID"} {
		for _, f := range fs {
			if f.Name == want && f.Value != "" {
				return f.Value
			}
		}
	}
	return "(untitled)"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// SlackReply posts an agent's reply into a thread of the fake Slack
// (the newest root when threadTS is empty) to /hooks/<connector>, signed
// with the connector's signing secret, as Slack's Events API would.
func (s *Sandbox) SlackReply(ctx context.Context, connector, secret, threadTS, text string) error {
	if secret == "" {
		secret = slacktest.DefaultSigningSecret
	}
	sl := s.slack()
	if sl == nil {
		return errors.New("the sandbox has no fake Slack")
	}
	var channel, root string
	for _, m := range sl.Messages() {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			continue // a reply, not a thread
		}
		if threadTS != "" {
			if m.TS == threadTS {
				channel, root = m.Channel, m.TS
			}
		} else if m.TS > root {
			channel, root = m.Channel, m.TS
		}
	}
	threadTS = root
	if channel == "" {
		return errors.New("the fake Slack has no such thread: a customer must write first")
	}
	now := time.Now()
	ts := strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64)
	body := slacktest.EventCallback("Ev"+strconv.FormatInt(now.UnixNano(), 36), now, slacktest.MessageEvent{
		User: "U0AGENT", Text: text, TS: ts, ThreadTS: threadTS, Channel: channel,
	})
	// The fake shows the reply in its thread, as Slack would.
	sl.PostAsUser(channel, threadTS, "U0AGENT", text)
	return s.post(ctx, s.hubURL+"/hooks/"+connector, body, slacktest.SignedEvent(secret, now, body))
}

// ZendeskComment adds an agent's public comment to a ticket of the fake
// Zendesk, which sends its signed webhook to /hooks/<connector>.
func (s *Sandbox) ZendeskComment(ctx context.Context, connector string, ticketID int64, text string) error {
	zd := s.zendesk()
	if zd == nil {
		return errors.New("the sandbox has no fake Zendesk")
	}
	zd.SetWebhookTarget(s.hubURL + "/hooks/" + connector)
	if _, err := zd.AgentComment(ticketID, text, true); err != nil {
		return fmt.Errorf("zendesk ticket %d: %w", ticketID, err)
	}
	for _, h := range zd.Webhooks() {
		if h.TicketID == ticketID && h.Error != "" {
			return fmt.Errorf("the fake Zendesk's webhook to the hub failed: %s", h.Error)
		}
	}
	return nil
}

// samples are customer messages the sandbox can play: each a WhatsApp
// message object with the text a person would send.
var samples = map[string]func(text string) map[string]any{
	"text": func(text string) map[string]any {
		return map[string]any{"type": "text", "text": map[string]any{"body": orDefault(text, "Olá, preciso de ajuda com meu pedido")}}
	},
	"billing question": func(text string) map[string]any {
		return map[string]any{"type": "text", "text": map[string]any{"body": orDefault(text, "Preciso da segunda via da fatura")}}
	},
	"talk to sales button": func(string) map[string]any {
		return map[string]any{"type": "interactive", "interactive": map[string]any{"type": "button_reply",
			"button_reply": map[string]any{"id": "talk_to_sales", "title": "Falar com vendas"}}}
	},
	"location": func(string) map[string]any {
		return map[string]any{"type": "location", "location": map[string]any{"latitude": -23.5613, "longitude": -46.6565, "name": "Av. Paulista"}}
	},
	"photo":          func(text string) map[string]any { return mediaSample(Samples[0], "image", text) },
	"voice note":     func(string) map[string]any { return mediaSample(Samples[1], "audio", "") },
	"document (PDF)": func(text string) map[string]any { return mediaSample(Samples[2], "document", text) },
	"opt out (PARAR)": func(string) map[string]any {
		return map[string]any{"type": "text", "text": map[string]any{"body": "PARAR"}}
	},
}

// mediaSample is a customer's message with one of the sample files, as
// WhatsApp's webhook describes it.
func mediaSample(smp Sample, kind, caption string) map[string]any {
	sum := sha256.Sum256(smp.Bytes())
	m := map[string]any{"id": smp.MediaID, "mime_type": smp.MimeType, "sha256": base64.StdEncoding.EncodeToString(sum[:])}
	switch kind {
	case "audio":
		m["voice"] = true
	case "document":
		m["filename"] = smp.Filename
	}
	if caption != "" && kind != "audio" {
		m["caption"] = caption
	}
	return map[string]any{"type": kind, kind: m}
}

// Samples names the customer messages CustomerMessage plays.
func (s *Sandbox) Samples() []string {
	out := make([]string, 0, len(samples))
	for k := range samples {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The sandbox's customer, the one of testdata/whatsapp's fixtures.
const (
	customerWAID = "5511987650001"
	customerName = "Ana Souza"
)

// CustomerMessage posts a signed webhook with a customer message, as Meta
// would, to the hub's /webhooks/whatsapp.
func (s *Sandbox) CustomerMessage(ctx context.Context, sample, text string) error {
	mk, ok := samples[sample]
	if !ok {
		return fmt.Errorf("no sample %q (samples: %s)", sample, strings.Join(s.Samples(), ", "))
	}
	now := time.Now()
	msg := mk(text)
	msg["from"] = customerWAID
	msg["id"] = "wamid.SANDBOX." + strconv.FormatInt(now.UnixNano(), 36)
	msg["timestamp"] = strconv.FormatInt(now.Unix(), 10)
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]any{"display_phone_number": DisplayNumber, "phone_number_id": PhoneNumberID},
			"contacts":          []any{map[string]any{"profile": map[string]any{"name": customerName}, "wa_id": customerWAID}},
			"messages":          []any{msg},
		}}}}},
	})
	if err != nil {
		return err
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {ingest.Sign([]byte(s.appSecret), body)}}
	return s.post(ctx, s.hubURL+"/webhooks/whatsapp", body, h)
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func (s *Sandbox) post(ctx context.Context, url string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the hub answered %d: %s", resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	return nil
}
