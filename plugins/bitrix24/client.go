package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/wahub/wahub/sdk/sdkhttp"
)

const (
	// maxAnswer bounds an answer: a page of 50 contacts is well under it.
	maxAnswer = 16 << 20
	// maxBatch is how many commands Bitrix24 takes in one batch.
	maxBatch = 50
	// limitRetries is how often one call is retried in place after 503
	// QUERY_LIMIT_EXCEEDED before the events are handed back to the hub:
	// the bucket drains within seconds, and the hub's retry would cost
	// a whole batch's lookups again.
	limitRetries = 4
	// limitBackoff is the first pause after QUERY_LIMIT_EXCEEDED; it
	// doubles with each retry of the same call (1s, 2s, 4s, 8s).
	limitBackoff = time.Second
	// slowFor is how long the rate stays halved after the portal said
	// QUERY_LIMIT_EXCEEDED: the bucket is shared with every app on our
	// IP, so our own 2 per second may be too much while it drains.
	slowFor = time.Minute
	// retryAfterLimit is what the hub is asked to wait when the portal
	// keeps refusing.
	retryAfterLimit = 10 * time.Second
	// retryAfterBudget is what the hub waits after OPERATION_TIME_LIMIT
	// or OVERLOAD_LIMIT: a method's time budget is per 10 minutes.
	retryAfterBudget = time.Minute
)

// client calls one portal's REST API through its inbound webhook.
type client struct {
	s     *settings
	http  *http.Client
	pacer *pacer
	log   interface{ Warn(string, ...any) }
}

func newClient(s *settings, clk clock, log interface{ Warn(string, ...any) }) *client {
	return &client{
		s: s,
		// The webhook's code is in the path: a redirect would carry it
		// to another host, and a redirected POST loses its body.
		http:  sdkhttp.NewClient(2, nil),
		pacer: newPacer(clk, s.rate),
		log:   log,
	}
}

// envelope is every answer of the REST API.
type envelope struct {
	Result json.RawMessage `json:"result"`
	Total  json.RawMessage `json:"total"`
	Next   json.RawMessage `json:"next"`
	Time   struct {
		DateStart string `json:"date_start"`
	} `json:"time"`
	Error            json.RawMessage `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// apiError is a failed call, or a failed command of a batch.
type apiError struct {
	method string
	// status is the HTTP status; 0 for a command inside a batch (which
	// answers 200) and for a transport error.
	status      int
	code        string
	description string
	transport   error
	portal      string
	connector   string
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.method)
	b.WriteString(": ")
	switch {
	case e.transport != nil:
		fmt.Fprintf(&b, "no answer from %s: %v", e.portal, e.transport)
	default:
		b.WriteString("Bitrix24 answered")
		if e.status != 0 {
			fmt.Fprintf(&b, " %d", e.status)
		}
		if e.code != "" {
			b.WriteString(" " + e.code)
		}
		if e.description != "" {
			b.WriteString(": " + e.description)
		}
	}
	if h := e.hint(); h != "" {
		b.WriteString(" — " + h)
	}
	return b.String()
}

// errClass is what an error means for the events behind it.
type errClass int

const (
	// classTransient may work later: the hub retries.
	classTransient errClass = iota
	// classRateLimited: the portal's bucket is full.
	classRateLimited
	// classPermanent will not work for this event as it is.
	classPermanent
	// classFatal will not work for any event until the user fixes the
	// webhook or the portal's plan or rights.
	classFatal
	// classStale: the contact or lead the KV remembered is gone.
	classStale
)

func (e *apiError) class() errClass {
	if e.transport != nil {
		return classTransient
	}
	switch strings.ToUpper(e.code) {
	case "QUERY_LIMIT_EXCEEDED":
		return classRateLimited
	case "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT", "INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER":
		return classTransient
	case "NO_AUTH_FOUND", "INVALID_CREDENTIALS", "EXPIRED_TOKEN", "INVALID_TOKEN", "INSUFFICIENT_SCOPE",
		"WRONG_AUTH_TYPE", "INVALID_REQUEST", "ERROR_METHOD_NOT_FOUND", "PAYMENT_REQUIRED", "ACCESS_DENIED_PAYMENT":
		return classFatal
	case "OWNER_NOT_FOUND", "NOT_FOUND":
		return classStale
	}
	switch {
	case e.status == http.StatusUnauthorized, e.status == http.StatusForbidden, e.status == http.StatusNotFound:
		return classFatal
	case e.status == http.StatusRequestTimeout, e.status == http.StatusTooManyRequests, e.status >= 500:
		return classTransient
	}
	return classPermanent
}

// retryAfter is how long the hub should wait before trying again.
func (e *apiError) retryAfter() time.Duration {
	switch strings.ToUpper(e.code) {
	case "QUERY_LIMIT_EXCEEDED":
		return retryAfterLimit
	case "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT":
		return retryAfterBudget
	}
	return 0
}

// hint says what to do about an error, when a person can do something.
func (e *apiError) hint() string {
	key := "connectors." + e.connector + ".config.webhook_url"
	switch strings.ToUpper(e.code) {
	case "QUERY_LIMIT_EXCEEDED":
		return "the portal's request limit (2 per second per IP, shared by every app) is used up; will retry; lower requests_per_second if other integrations use the same portal"
	case "OPERATION_TIME_LIMIT":
		return "this method used up its 10-minute time budget on the portal; will retry"
	case "OVERLOAD_LIMIT":
		return "the portal blocked REST calls because it is overloaded; will retry"
	case "NO_AUTH_FOUND", "INVALID_CREDENTIALS", "EXPIRED_TOKEN", "INVALID_TOKEN":
		return "the inbound webhook was rejected: it was deleted, or its code is wrong; create an inbound webhook with the crm scope in Bitrix24 (Developer resources → Other → Inbound webhook) and set " + key + " to its URL"
	case "INSUFFICIENT_SCOPE":
		return "the inbound webhook lacks the crm scope: edit it in Bitrix24 (Developer resources → Integrations) and tick CRM (crm)"
	case "INVALID_REQUEST":
		return "Bitrix24 requires HTTPS: use https:// in " + key
	case "ERROR_METHOD_NOT_FOUND":
		return "the address does not lead to a Bitrix24 REST API with this method: check " + key + " (https://<portal>/rest/<user id>/<code>/)"
	case "OWNER_NOT_FOUND", "NOT_FOUND":
		return "the CRM record is gone"
	}
	switch e.class() {
	case classFatal:
		if e.status == http.StatusForbidden {
			return "access denied: the REST API needs a paid Bitrix24 plan, and the webhook's user needs rights to add and edit " + "CRM records; check both, then replay the dead letters"
		}
		return "check " + key + " (https://<portal>/rest/<user id>/<code>/)"
	case classTransient:
		return "will retry"
	}
	return ""
}

// pacer keeps one portal's calls within the configured rate, one at a
// time, and backs off when the portal says its bucket is full.
//
// One call at a time, rather than a limiter alone: at 2 per second
// concurrency buys little, and it makes the rate hold exactly as the
// portal measures arrivals (no call overtakes another between its slot
// and its send).
type pacer struct {
	clock clock
	sem   chan struct{}
	lim   *rate.Limiter
	full  rate.Limit
	// pauseUntil holds every call after QUERY_LIMIT_EXCEEDED; slowUntil
	// is when the halved rate goes back to full. Guarded by sem.
	pauseUntil, slowUntil time.Time
}

func newPacer(clk clock, perSecond float64) *pacer {
	full := rate.Limit(perSecond)
	return &pacer{clock: clk, sem: make(chan struct{}, 1), lim: rate.NewLimiter(full, 1), full: full}
}

// acquire waits for the next slot; release must be called after the call.
func (p *pacer) acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release = func() { <-p.sem }
	now := p.clock.Now()
	if now.Before(p.pauseUntil) {
		if err := p.clock.Sleep(ctx, p.pauseUntil.Sub(now)); err != nil {
			release()
			return nil, err
		}
		now = p.clock.Now()
	}
	if !p.slowUntil.IsZero() && !now.Before(p.slowUntil) {
		p.lim.SetLimitAt(now, p.full)
		p.slowUntil = time.Time{}
	}
	r := p.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		if err := p.clock.Sleep(ctx, d); err != nil {
			r.CancelAt(now)
			release()
			return nil, err
		}
	}
	return release, nil
}

// limited records a QUERY_LIMIT_EXCEEDED: pause for backoff, and halve
// the rate for a while. Called with sem held.
func (p *pacer) limited(backoff time.Duration) {
	now := p.clock.Now()
	p.pauseUntil = now.Add(backoff)
	if l := p.lim.Limit() / 2; l >= p.full/8 {
		p.lim.SetLimitAt(now, l)
	}
	p.slowUntil = now.Add(slowFor)
}

// call runs one method and decodes the envelope. Errors are *apiError,
// or the context's error when ctx ended while waiting for a slot.
func (c *client) call(ctx context.Context, method string, params any) (*envelope, error) {
	body, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%s: encode parameters: %w", method, err)
	}
	for attempt := 0; ; attempt++ {
		release, err := c.pacer.acquire(ctx)
		if err != nil {
			return nil, err
		}
		env, apiErr := c.do(ctx, method, bytes.NewReader(body), int64(len(body)), c.s.timeout)
		if apiErr != nil && apiErr.class() == classRateLimited && attempt < limitRetries && ctx.Err() == nil {
			c.pacer.limited(limitBackoff << attempt)
			release()
			continue
		}
		release()
		if apiErr != nil {
			return nil, apiErr
		}
		return env, nil
	}
}

// streamBody opens the JSON body of one attempt of a streamed call and
// says its length (-1 if unknown).
type streamBody func() (io.ReadCloser, int64, error)

// callStream is call for a body too large to hold (a file, base64 in
// JSON): open gives the body of each attempt. An error of open is
// returned as it is.
func (c *client) callStream(ctx context.Context, method string, open streamBody, timeout time.Duration) (*envelope, error) {
	for attempt := 0; ; attempt++ {
		release, err := c.pacer.acquire(ctx)
		if err != nil {
			return nil, err
		}
		body, n, err := open()
		if err != nil {
			release()
			return nil, err
		}
		env, apiErr := c.do(ctx, method, body, n, timeout)
		body.Close()
		if apiErr != nil && apiErr.class() == classRateLimited && attempt < limitRetries && ctx.Err() == nil {
			c.pacer.limited(limitBackoff << attempt)
			release()
			continue
		}
		release()
		if apiErr != nil {
			return nil, apiErr
		}
		return env, nil
	}
}

func (c *client) do(ctx context.Context, method string, body io.Reader, length int64, timeout time.Duration) (*envelope, *apiError) {
	fail := func(status int, code, desc string, transport error) *apiError {
		return &apiError{method: method, status: status, code: code, description: desc, transport: transport, portal: c.s.portal, connector: c.s.name}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The error would quote the URL, which holds the webhook's code.
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.s.base+method+".json", body)
	if err != nil {
		return nil, fail(0, "", "", errors.New("cannot build the request"))
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahub-bitrix24/"+Version)
	resp, err := c.http.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = errors.New("cancelled before the portal answered")
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("no answer within %s (config.timeout)", timeout)
		default:
			// url.Error quotes the URL, which holds the webhook's code.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
		}
		return nil, fail(0, "", "", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fail(0, "", "", fmt.Errorf("reading the answer: %v", err))
	}
	var env envelope
	jsonErr := json.Unmarshal(raw, &env)
	code := errorCode(env.Error)
	if jsonErr == nil && (code != "" || len(env.Error) > 0 && string(env.Error) != "null") {
		return nil, fail(resp.StatusCode, code, env.ErrorDescription, nil)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fail(resp.StatusCode, "", snippet(raw, jsonErr == nil), nil)
	}
	if jsonErr != nil {
		return nil, fail(resp.StatusCode, "ERROR_UNEXPECTED_ANSWER", "the answer is not JSON: "+snippet(raw, false), nil)
	}
	return &env, nil
}

// errorCode reads "error", which is a string, sometimes empty.
func errorCode(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// snippet is the start of an unexpected answer, for the error message;
// an HTML page (a gateway's error) is reduced to its title.
func snippet(raw []byte, isJSON bool) string {
	s := string(raw)
	if !isJSON {
		if i := strings.Index(strings.ToLower(s), "<title>"); i >= 0 {
			s = s[i+len("<title>"):]
			if j := strings.Index(strings.ToLower(s), "</title>"); j >= 0 {
				s = s[:j]
			}
		}
	}
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, string(utf8.RuneError))), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// command is one call to put in a batch.
type command struct {
	method string
	params obj
}

// cmdResult is what became of one command.
type cmdResult struct {
	result json.RawMessage
	err    *apiError
	// executed is false for commands a halted batch did not run.
	executed bool
}

// run executes cmds, as one call when there is one, else as batch calls
// of up to 50. halt stops at the first failing command (the rest are
// not executed). A non-nil error is a failure of a whole call (the
// network, the webhook, the rate limit): the commands of that call and
// after it did not run, or it is unknown whether they did.
func (c *client) run(ctx context.Context, cmds []command, halt bool) ([]cmdResult, error) {
	out := make([]cmdResult, 0, len(cmds))
	for len(cmds) > 0 {
		n := min(len(cmds), maxBatch)
		res, err := c.runOne(ctx, cmds[:n], halt)
		if err != nil {
			return out, err
		}
		out = append(out, res...)
		cmds = cmds[n:]
		if halt && anyFailed(res) {
			for range cmds {
				out = append(out, cmdResult{})
			}
			break
		}
	}
	return out, nil
}

func anyFailed(res []cmdResult) bool {
	for _, r := range res {
		if r.err != nil {
			return true
		}
	}
	return false
}

func (c *client) runOne(ctx context.Context, cmds []command, halt bool) ([]cmdResult, error) {
	if len(cmds) == 1 {
		env, err := c.call(ctx, cmds[0].method, cmds[0].params)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && (ae.class() == classPermanent || ae.class() == classStale) {
				return []cmdResult{{err: ae, executed: true}}, nil
			}
			return nil, err
		}
		return []cmdResult{{result: env.Result, executed: true}}, nil
	}
	cmd := make(obj, len(cmds))
	for i, c := range cmds {
		cmd[i] = kv{cmdKey(i), c.method + "?" + c.params.phpQuery()}
	}
	haltV := 0
	if halt {
		haltV = 1
	}
	env, err := c.call(ctx, "batch", obj{{"halt", haltV}, {"cmd", cmd}})
	if err != nil {
		return nil, err
	}
	var body struct {
		Result      json.RawMessage `json:"result"`
		ResultError json.RawMessage `json:"result_error"`
	}
	if err := json.Unmarshal(env.Result, &body); err != nil {
		return nil, &apiError{method: "batch", code: "ERROR_UNEXPECTED_ANSWER", description: "result is not an object", portal: c.s.portal, connector: c.s.name}
	}
	results, err1 := objectOrEmpty(body.Result)
	errs, err2 := objectOrEmpty(body.ResultError)
	if err1 != nil || err2 != nil {
		return nil, &apiError{method: "batch", code: "ERROR_UNEXPECTED_ANSWER", description: "result sections are not objects", portal: c.s.portal, connector: c.s.name}
	}
	out := make([]cmdResult, len(cmds))
	for i, cm := range cmds {
		k := cmdKey(i)
		if e, ok := errs[k]; ok {
			var ee struct {
				Error            json.RawMessage `json:"error"`
				ErrorDescription string          `json:"error_description"`
			}
			_ = json.Unmarshal(e, &ee)
			out[i] = cmdResult{executed: true, err: &apiError{method: cm.method, code: errorCode(ee.Error), description: ee.ErrorDescription, portal: c.s.portal, connector: c.s.name}}
			continue
		}
		if r, ok := results[k]; ok {
			out[i] = cmdResult{result: r, executed: true}
		}
	}
	return out, nil
}

// cmdKey names a batch command. Not numeric: PHP would answer results
// keyed 0..n-1 as a list, losing which is which when one fails.
func cmdKey(i int) string { return "c" + strconv.Itoa(i) }

// objectOrEmpty decodes a section that is an object, or empty in any of
// the forms Bitrix24 uses for "nothing" ([], {}, null, "", false).
func objectOrEmpty(raw json.RawMessage) (map[string]json.RawMessage, error) {
	t := strings.TrimSpace(string(raw))
	switch t {
	case "", "null", "[]", "{}", `""`, "false":
		return map[string]json.RawMessage{}, nil
	}
	if strings.HasPrefix(t, "[") {
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return nil, err
		}
		m := make(map[string]json.RawMessage, len(arr))
		for i, v := range arr {
			m[strconv.Itoa(i)] = v
		}
		return m, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// parseID reads an id that comes as a number or as a string.
func parseID(raw json.RawMessage) (string, bool) {
	t := strings.TrimSpace(string(raw))
	if s, err := strconv.Unquote(t); err == nil && strings.HasPrefix(t, `"`) {
		t = strings.TrimSpace(s)
	}
	if t == "" {
		return "", false
	}
	n, err := strconv.ParseUint(t, 10, 63)
	if err != nil || n == 0 {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}

// kv and obj are a JSON object with its keys in order: Bitrix24 reads
// `order` and batch `cmd` in the order given, and Go maps have none.
type kv struct {
	k string
	v any
}

type obj []kv

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// phpQuery encodes o the way a batch command takes its parameters:
// fields[NAME]=Ana&fields[PHONE][0][VALUE]=%2B55...
func (o obj) phpQuery() string {
	var parts []string
	encodePHP("", o, &parts)
	return strings.Join(parts, "&")
}

func encodePHP(prefix string, v any, out *[]string) {
	sub := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "[" + k + "]"
	}
	switch t := v.(type) {
	case obj:
		for _, p := range t {
			encodePHP(sub(p.k), p.v, out)
		}
	case []any:
		for i, x := range t {
			encodePHP(sub(strconv.Itoa(i)), x, out)
		}
	case []string:
		for i, x := range t {
			encodePHP(sub(strconv.Itoa(i)), x, out)
		}
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			encodePHP(sub(k), t[k], out)
		}
	case bool:
		s := "N"
		if t {
			s = "Y"
		}
		*out = append(*out, url.QueryEscape(prefix)+"="+s)
	case float64:
		*out = append(*out, url.QueryEscape(prefix)+"="+strconv.FormatFloat(t, 'f', -1, 64))
	default:
		*out = append(*out, url.QueryEscape(prefix)+"="+url.QueryEscape(fmt.Sprint(t)))
	}
}
