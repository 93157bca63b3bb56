package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// KV keys. A customer's entity is remembered with the portal it lives on,
// so that pointing the connector at another portal does not reuse ids.
func customerKey(key string) string { return "customer:" + key }
func eventKey(id string) string     { return "evt:" + id }

// entityRef is a contact or lead, as the KV keeps it.
type entityRef struct {
	Portal string `json:"portal"`
	Type   string `json:"type"` // "contact" or "lead", as timeline comments name them
	ID     string `json:"id"`
}

// commentRef is what the KV keeps for an event already on the timeline.
type commentRef struct {
	Comment string `json:"comment"`
	Entity  string `json:"entity"`
}

// customer is one WhatsApp customer of the batch.
type customer struct {
	key, phone, name string
	// referral is the Click-to-WhatsApp ad the customer came from, when
	// a message of theirs in the batch says: a new record's source.
	referral *sdk.Referral
	ref      entityRef // ID "" until known
	// cached: ref came from the KV and may point at a record a user has
	// since deleted; reresolved: that was found out and looked up again.
	cached, reresolved bool
	failed             *failure
}

// conversation is the events of one conversation still to answer, in
// log order.
type conversation struct {
	cust    *customer
	pending []int
}

// failure is why events were not delivered.
type failure struct {
	err   error
	class errClass
	after time.Duration
}

func failureOf(err error) *failure {
	var ae *apiError
	if errors.As(err, &ae) {
		return &failure{err: ae, class: ae.class(), after: ae.retryAfter()}
	}
	// The context ended, or the hub's KV failed: neither is the event's
	// fault.
	return &failure{err: err, class: classTransient}
}

func (f *failure) result(eventID string) sdk.Result {
	switch f.class {
	case classPermanent, classFatal:
		return sdk.FailedResult(eventID, f.err)
	}
	return sdk.RetryResult(eventID, f.after, f.err)
}

// delivery is one Deliver call.
type delivery struct {
	c         *connector
	s         *settings
	ctx       context.Context
	kv        sdk.KV
	events    []sdk.Event
	results   []sdk.Result
	convs     []*conversation
	customers map[string]*customer
}

// Deliver logs each message on its customer's timeline and answers one
// result per event. Calls go one at a time (see pacer); the work is
// grouped so that it takes few calls: the lookups of all new customers
// in one batch, their creation in another, then comments (see
// commentRound).
func (i *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	c, s := i.c, i.s
	results := make([]sdk.Result, len(events))
	d := &delivery{c: c, s: s, ctx: ctx, kv: s.host.KV(), events: events, results: results, customers: map[string]*customer{}}
	d.run()
	return results
}

func handled(typ sdk.EventType) bool {
	switch typ {
	case sdk.TypeMessageReceived, sdk.TypeButtonClicked, sdk.TypeMessageSent:
		return true
	}
	return false
}

func (d *delivery) run() {
	d.group()
	d.skipDone()
	d.loadCustomers()
	for {
		if err := d.ctx.Err(); err != nil {
			d.stop(&failure{err: errors.New("not sent: the delivery was cancelled"), class: classTransient}, nil)
			return
		}
		for _, cv := range d.convs {
			if len(cv.pending) > 0 && cv.cust.failed != nil {
				d.failConversation(cv, cv.cust.failed)
			}
		}
		active := d.active()
		if len(active) == 0 {
			return
		}
		var need []*customer
		seen := map[*customer]bool{}
		for _, cv := range active {
			if cv.cust.ref.ID == "" && !seen[cv.cust] {
				seen[cv.cust] = true
				need = append(need, cv.cust)
			}
		}
		if len(need) > 0 {
			if err := d.resolve(need); err != nil {
				involved := map[*conversation]bool{}
				for _, cv := range active {
					if seen[cv.cust] {
						involved[cv] = true
					}
				}
				d.stop(failureOf(err), involved)
				return
			}
			continue
		}
		if !d.commentRound(active) {
			return
		}
	}
}

// group sorts the events into conversations and answers those this
// connector does not handle.
func (d *delivery) group() {
	byConv := map[string]*conversation{}
	for i := range d.events {
		ev := &d.events[i]
		if !handled(ev.Type) {
			d.results[i] = sdk.SkippedResult(ev.ID, "bitrix24 logs messages only (message.received, button.clicked, message.sent)")
			continue
		}
		phone := ""
		if ev.Contact != nil {
			phone = digits(ev.Contact.WAID)
		}
		if phone == "" {
			d.results[i] = sdk.SkippedResult(ev.ID, "no WhatsApp number (wa_id) on the event: Bitrix24 finds customers by phone")
			continue
		}
		key := ev.Contact.Key()
		cust := d.customers[key]
		if cust == nil {
			cust = &customer{key: key, phone: phone}
			d.customers[key] = cust
		}
		if cust.name == "" {
			cust.name = strings.TrimSpace(ev.Contact.Name)
		}
		if ev.Message != nil && cust.referral == nil {
			if ref, ok := sdk.ParseReferral(ev.Message.Referral); ok {
				cust.referral = &ref
			}
		}
		ck := ev.ConversationID
		if ck == "" {
			ck = "customer:" + key
		}
		cv := byConv[ck]
		if cv == nil {
			cv = &conversation{cust: cust}
			byConv[ck] = cv
			d.convs = append(d.convs, cv)
		}
		cv.pending = append(cv.pending, i)
	}
}

// skipDone answers Delivered for events an earlier delivery already put
// on the timeline.
func (d *delivery) skipDone() {
	for _, cv := range d.convs {
		kept := cv.pending[:0:0]
		for k, i := range cv.pending {
			id := d.events[i].ID
			_, found, err := d.kv.Get(d.ctx, eventKey(id))
			if err != nil {
				// Unknown whether it is on the timeline: adding it could
				// duplicate it. It and what follows wait.
				f := &failure{err: fmt.Errorf("look up %s in the hub's KV: %w", eventKey(id), err), class: classTransient}
				rest := &conversation{cust: cv.cust, pending: cv.pending[k:]}
				d.failConversation(rest, f)
				break
			}
			if found {
				d.results[i] = sdk.DeliveredResult(id)
				continue
			}
			kept = append(kept, i)
		}
		cv.pending = kept
	}
}

// loadCustomers takes the entity of each customer from the KV.
func (d *delivery) loadCustomers() {
	loaded := map[*customer]bool{}
	for _, cv := range d.convs {
		cust := cv.cust
		if len(cv.pending) == 0 || loaded[cust] {
			continue
		}
		loaded[cust] = true
		raw, found, err := d.kv.Get(d.ctx, customerKey(cust.key))
		if err != nil {
			cust.failed = &failure{err: fmt.Errorf("look up %s in the hub's KV: %w", customerKey(cust.key), err), class: classTransient}
			continue
		}
		var ref entityRef
		if found && json.Unmarshal(raw, &ref) == nil && ref.Portal == d.s.portal && ref.ID != "" && (ref.Type == "contact" || ref.Type == "lead") {
			cust.ref, cust.cached = ref, true
		}
	}
}

func (d *delivery) active() []*conversation {
	var out []*conversation
	for _, cv := range d.convs {
		if len(cv.pending) > 0 {
			out = append(out, cv)
		}
	}
	return out
}

// failConversation answers the first pending event of cv with f and
// holds the rest behind it.
func (d *delivery) failConversation(cv *conversation, f *failure) {
	if len(cv.pending) == 0 {
		return
	}
	first := d.events[cv.pending[0]].ID
	res := f.result(first)
	d.results[cv.pending[0]] = res
	after := time.Duration(0)
	if res.Outcome == sdk.Retry {
		after = res.RetryAfter
	}
	reason := fmt.Sprintf("not sent, to keep the conversation in order: the earlier event %s was not delivered (%s)", first, res.Outcome)
	for _, i := range cv.pending[1:] {
		d.results[i] = sdk.HeldResult(d.events[i].ID, after, reason)
	}
	cv.pending = nil
}

// stop ends the delivery after a failure of a whole call: the
// conversations involved in it get the failure, the others are not
// tried. After a fatal error (the webhook is rejected) those fail too,
// since no call can work; otherwise they wait for the next attempt
// without using one up.
func (d *delivery) stop(f *failure, involved map[*conversation]bool) {
	for _, cv := range d.active() {
		switch {
		case involved[cv]:
			d.failConversation(cv, f)
		case f.class == classFatal:
			d.failConversation(cv, &failure{err: fmt.Errorf("not tried: %w", f.err), class: classFatal})
		default:
			reason := "not tried: " + f.err.Error()
			for _, i := range cv.pending {
				d.results[i] = sdk.HeldResult(d.events[i].ID, f.after, reason)
			}
			cv.pending = nil
		}
	}
}

// resolve finds or creates the contact (or lead) of each customer. A
// returned error failed a whole call; a customer's own failure is in its
// failed field.
func (d *delivery) resolve(need []*customer) error {
	cmds := make([]command, len(need))
	for i, cust := range need {
		p := obj{{"type", "PHONE"}, {"values", []string{"+" + cust.phone}}}
		if d.s.entity == "contact" {
			p = append(obj{{"entity_type", "CONTACT"}}, p...)
		}
		cmds[i] = command{"crm.duplicate.findbycomm", p}
	}
	res, err := d.s.client.run(d.ctx, cmds, false)
	var create []*customer
	for i, r := range res {
		cust := need[i]
		if f := r.failure("crm.duplicate.findbycomm: the batch answer has no result for this lookup"); f != nil {
			cust.failed = f
			continue
		}
		ref, ok, perr := d.parseFind(r.result)
		switch {
		case perr != nil:
			cust.failed = &failure{err: perr, class: classTransient}
		case ok:
			cust.ref = ref
			d.remember(cust)
		default:
			create = append(create, cust)
		}
	}
	if err != nil {
		return err
	}
	if len(create) == 0 {
		return nil
	}
	cmds = cmds[:0]
	for _, cust := range create {
		cmds = append(cmds, d.createCommand(cust))
	}
	res, err = d.s.client.run(d.ctx, cmds, false)
	for i, r := range res {
		cust := create[i]
		if f := r.failure(cmds[i].method + ": the batch answer has no result for this record"); f != nil {
			cust.failed = f
			continue
		}
		id, ok := parseID(r.result)
		if !ok {
			cust.failed = &failure{err: fmt.Errorf("%s: Bitrix24 answered %s, not the new record's id", cmds[i].method, snippet(r.result, true)), class: classTransient}
			continue
		}
		cust.ref = entityRef{Portal: d.s.portal, Type: d.s.entity, ID: id}
		d.c.log.Info("created a CRM record for a WhatsApp customer", "portal", d.s.portal, "entity", d.s.entity, "id", id)
		d.remember(cust)
	}
	return err
}

// failure is what became of a command that did not run: its own error,
// or (missing) a batch answer without its result, which is worth a retry.
func (r cmdResult) failure(missing string) *failure {
	switch {
	case r.err != nil:
		return failureOf(r.err)
	case !r.executed:
		return &failure{err: errors.New(missing), class: classTransient}
	}
	return nil
}

// remember keeps a customer's entity in the KV. Failing to is not an
// error: the next lookup by phone finds the same record.
func (d *delivery) remember(cust *customer) {
	raw, _ := json.Marshal(cust.ref)
	if err := d.kv.Put(d.ctx, customerKey(cust.key), raw); err != nil {
		d.c.log.Warn("could not remember a customer's CRM record; it will be looked up by phone again", "key", customerKey(cust.key), "err", err)
	}
}

// parseFind reads crm.duplicate.findbycomm's answer: [] (or {}, null)
// when nothing matches, else {"CONTACT": [ids], "LEAD": [ids]} with ids
// as numbers or strings. A contact is preferred to a lead, and the
// oldest (lowest id) of several.
func (d *delivery) parseFind(raw json.RawMessage) (entityRef, bool, error) {
	m, err := objectOrEmpty(raw)
	if err != nil {
		return entityRef{}, false, fmt.Errorf("crm.duplicate.findbycomm: unexpected answer %s", snippet(raw, true))
	}
	types := []string{"CONTACT"}
	if d.s.entity == "lead" {
		types = append(types, "LEAD")
	}
	for _, t := range types {
		ids, err := objectOrEmpty(m[t])
		if err != nil {
			continue
		}
		best := uint64(0)
		for _, v := range ids {
			if id, ok := parseID(v); ok {
				n, _ := strconv.ParseUint(id, 10, 64)
				if best == 0 || n < best {
					best = n
				}
			}
		}
		if best != 0 {
			return entityRef{Portal: d.s.portal, Type: strings.ToLower(t), ID: strconv.FormatUint(best, 10)}, true, nil
		}
	}
	return entityRef{}, false, nil
}

func (d *delivery) createCommand(cust *customer) command {
	phone := "+" + cust.phone
	name := cust.name
	if name == "" {
		name = "WhatsApp " + phone
	}
	fields := obj{{"NAME", name}}
	method := "crm.contact.add"
	if d.s.entity == "lead" {
		method = "crm.lead.add"
		fields = append(obj{{"TITLE", "WhatsApp: " + name + " (" + phone + ")"}}, fields...)
	}
	fields = append(fields, kv{"PHONE", []any{obj{{"VALUE", phone}, {"VALUE_TYPE", "WORK"}}}})
	keys := make([]string, 0, len(d.s.createFields))
	for k := range d.s.createFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fields = append(fields, kv{k, d.s.createFields[k]})
	}
	if ref := cust.referral; ref != nil {
		// The ad is the lead's source: ADVERTISING is one of every
		// portal's stock sources (crm.status.list ENTITY_ID=SOURCE).
		if _, set := d.s.createFields["SOURCE_ID"]; !set {
			fields = append(fields, kv{"SOURCE_ID", "ADVERTISING"})
		}
		if _, set := d.s.createFields["SOURCE_DESCRIPTION"]; !set {
			fields = append(fields, kv{"SOURCE_DESCRIPTION", ref.Summary()})
		}
	}
	return command{method, obj{{"fields", fields}, {"params", obj{{"REGISTER_SONET_EVENT", "Y"}}}}}
}

// commentRound adds the next comments and reports whether to go on.
//
// Order within a conversation must hold, so a batch never runs a
// conversation's comment after one of its comments failed: with one
// conversation left, all its comments go in one batch with halt=1 (the
// portal stops at a failure); with several, each contributes only its
// next comment to a batch with halt=0, and rounds repeat.
func (d *delivery) commentRound(active []*conversation) bool {
	type item struct {
		cv *conversation
		i  int
	}
	var items []item
	halt := len(active) == 1
	if halt {
		for _, i := range active[0].pending {
			items = append(items, item{active[0], i})
		}
	} else {
		for _, cv := range active[:min(len(active), maxBatch)] {
			items = append(items, item{cv, cv.pending[0]})
		}
	}
	// A comment with a file is a call of its own (a batch carries its
	// commands in a query string): it goes alone in its round, and a
	// conversation's comments before it go first.
	for k, it := range items {
		if !d.hasFile(&d.events[it.i]) {
			continue
		}
		if halt && k > 0 {
			items = items[:k]
		} else {
			items = []item{it}
		}
		break
	}
	var (
		res []cmdResult
		err error
	)
	if len(items) == 1 && d.hasFile(&d.events[items[0].i]) {
		res, err = d.commentWithFile(&d.events[items[0].i], items[0].cv.cust.ref)
	} else {
		cmds := make([]command, len(items))
		for k, it := range items {
			ref := it.cv.cust.ref
			id, _ := strconv.ParseUint(ref.ID, 10, 63)
			cmds[k] = command{"crm.timeline.comment.add", obj{{"fields", obj{
				{"ENTITY_ID", id}, {"ENTITY_TYPE", ref.Type}, {"COMMENT", commentBody(&d.events[it.i])},
			}}}}
		}
		res, err = d.s.client.run(d.ctx, cmds, halt)
	}
	progress := false
	for k, r := range res {
		it := items[k]
		cv := it.cv
		if len(cv.pending) == 0 || cv.pending[0] != it.i {
			continue // its conversation failed earlier in this answer
		}
		switch {
		case r.err == nil && r.executed:
			ev := &d.events[it.i]
			commentID, _ := parseID(r.result)
			raw, _ := json.Marshal(commentRef{Comment: commentID, Entity: cv.cust.ref.Type + ":" + cv.cust.ref.ID})
			if perr := d.kv.Put(d.ctx, eventKey(ev.ID), raw); perr != nil {
				// The comment exists: answering Retry would add it again.
				// Only the guard against a redelivery is missing.
				d.c.log.Warn("comment added but not recorded; a redelivery would add it again", "event_id", ev.ID, "err", perr)
			}
			d.results[it.i] = sdk.DeliveredResult(ev.ID)
			cv.pending = cv.pending[1:]
			progress = true
		case r.err != nil:
			progress = true
			f := failureOf(r.err)
			cust := cv.cust
			if f.class == classStale && cust.ref.ID == "" {
				continue // another conversation of this customer already found it gone
			}
			if f.class == classStale && cust.cached && !cust.reresolved {
				// A user deleted or merged the record the KV remembered:
				// look the customer up again and go on.
				cust.reresolved, cust.cached, cust.ref = true, false, entityRef{}
				if derr := d.kv.Delete(d.ctx, customerKey(cust.key)); derr != nil {
					d.c.log.Warn("could not forget a deleted CRM record", "key", customerKey(cust.key), "err", derr)
				}
				continue
			}
			if f.class == classStale {
				f.class = classTransient
			}
			d.failConversation(cv, f)
		}
	}
	if err != nil {
		involved := map[*conversation]bool{}
		for _, it := range items[len(res):] {
			involved[it.cv] = true
		}
		d.stop(failureOf(err), involved)
		return false
	}
	if !progress {
		d.stop(&failure{err: errors.New("batch: the answer has no result for the comments; will retry"), class: classTransient}, nil)
		return false
	}
	return true
}

// digits keeps the digits of a phone number, without an international
// "00" prefix.
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return strings.TrimPrefix(b.String(), "00")
}
