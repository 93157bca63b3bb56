package graphtest_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/sdk"
)

const appSecret = "app-secret-123"

type delivery struct {
	header http.Header
	body   []byte
}

// hub records webhook posts and answers with status.
func hub(t *testing.T, status int) (*httptest.Server, chan delivery) {
	t.Helper()
	ch := make(chan delivery, 64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- delivery{r.Header.Clone(), b}
		w.WriteHeader(status)
	}))
	t.Cleanup(ts.Close)
	return ts, ch
}

func withHook(ts *httptest.Server, opts ...graphtest.Option) *graphtest.Server {
	return graphtest.NewServer(append([]graphtest.Option{
		graphtest.WithPhoneNumber(pnid, "15550783881"),
		graphtest.WithWABA("102290129340398"),
		graphtest.WithStatusWebhook(graphtest.StatusWebhook{URL: ts.URL + "/webhooks/whatsapp", AppSecret: appSecret, Client: ts.Client()}),
	}, opts...)...)
}

func wamidOf(t *testing.T, a answer) string {
	t.Helper()
	var got struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(a.body, &got); err != nil || len(got.Messages) != 1 {
		t.Fatalf("no wamid: %d %s", a.status, a.body)
	}
	return got.Messages[0].ID
}

func checkSignature(t *testing.T, d delivery) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(d.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := d.header.Get("X-Hub-Signature-256"); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if !ingest.VerifySignature(d.header.Get(ingest.SignatureHeader), d.body, [][]byte{[]byte(appSecret)}) {
		t.Error("the hub's own check refuses the signature")
	}
	if d.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", d.header.Get("Content-Type"))
	}
}

type wire struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				MessagingProduct string            `json:"messaging_product"`
				Metadata         map[string]string `json:"metadata"`
				Contacts         []map[string]string
				Statuses         []map[string]json.RawMessage
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

func decode(t *testing.T, b []byte) (w wire, st map[string]json.RawMessage) {
	t.Helper()
	if err := json.Unmarshal(b, &w); err != nil || len(w.Entry) != 1 || len(w.Entry[0].Changes) != 1 ||
		len(w.Entry[0].Changes[0].Value.Statuses) != 1 {
		t.Fatalf("shape: %s", b)
	}
	return w, w.Entry[0].Changes[0].Value.Statuses[0]
}

func str(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func TestEmitStatusLikeMeta(t *testing.T) {
	clk := newClock()
	ts, got := hub(t, 200)
	fake := withHook(ts, graphtest.WithClock(clk.Now))
	defer fake.Close()
	wamid := wamidOf(t, send(t, fake,
		`{"messaging_product":"whatsapp","to":"+16505551234","biz_opaque_callback_data":"out_7","type":"text","text":{"body":"hi"}}`))

	clk.Advance(time.Second)
	if err := fake.EmitStatus(wamid, "sent"); err != nil {
		t.Fatal(err)
	}
	d := <-got
	checkSignature(t, d)
	w, st := decode(t, d.body)
	v := w.Entry[0].Changes[0].Value
	if w.Object != "whatsapp_business_account" || w.Entry[0].ID != "102290129340398" || w.Entry[0].Changes[0].Field != "messages" ||
		v.MessagingProduct != "whatsapp" || v.Metadata["phone_number_id"] != pnid || v.Metadata["display_phone_number"] != "15550783881" ||
		v.Contacts != nil {
		t.Errorf("envelope %s", d.body)
	}
	if str(st["id"]) != wamid || str(st["status"]) != "sent" || str(st["recipient_id"]) != "16505551234" ||
		str(st["timestamp"]) != strconv.FormatInt(clk.Now().Unix(), 10) || str(st["biz_opaque_callback_data"]) != "out_7" ||
		!bytes.Contains(st["pricing"], []byte(`"category":"service"`)) {
		t.Errorf("status %s", d.body)
	}
	if !bytes.HasPrefix(d.body, []byte(`{"object":"whatsapp_business_account","entry":[{"id":`)) {
		t.Errorf("field order differs from Meta's: %s", d.body)
	}

	// The hub's parser reads it as a status event for that message.
	evs, err := ingest.Parse(d.body, clk.Now())
	if err != nil || len(evs) != 1 {
		t.Fatalf("parse: %v %v", evs, err)
	}
	ev := evs[0]
	if ev.Type != sdk.TypeStatusSent || ev.Status.MessageID != wamid || ev.Business.PhoneNumberID != pnid ||
		ev.Contact == nil || ev.Contact.WAID != "16505551234" || !ev.OccurredAt.Equal(clk.Now()) {
		t.Errorf("event %+v", ev)
	}

	// Out of order: read before delivered, as Meta may send them.
	for _, s := range []string{"read", "delivered"} {
		if err := fake.EmitStatus(wamid, s); err != nil {
			t.Fatal(err)
		}
	}
	_, read := decode(t, (<-got).body)
	_, delivered := decode(t, (<-got).body)
	if str(read["status"]) != "read" || read["pricing"] != nil || str(delivered["status"]) != "delivered" || delivered["pricing"] == nil {
		t.Errorf("read %v delivered %v", read, delivered)
	}

	sts := fake.Statuses()
	if len(sts) != 3 || sts[0].Status != "sent" || sts[1].Status != "read" || sts[0].HTTPStatus != 200 || sts[0].WAMID != wamid {
		t.Errorf("statuses %+v", sts)
	}
}

func TestEmitFailedStatus(t *testing.T) {
	ts, got := hub(t, 200)
	fake := withHook(ts)
	defer fake.Close()
	wamid := wamidOf(t, send(t, fake, template("+16505551234", "promo")))
	if err := fake.EmitStatus(wamid, "failed", graphtest.StatusErrorFor(131049)); err != nil {
		t.Fatal(err)
	}
	d := <-got
	checkSignature(t, d)
	_, st := decode(t, d.body)
	var errs []struct {
		Code      int    `json:"code"`
		Title     string `json:"title"`
		Message   string `json:"message"`
		Href      string `json:"href"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	}
	_ = json.Unmarshal(st["errors"], &errs)
	if len(errs) != 1 || errs[0].Code != 131049 || errs[0].Title != "This message was not delivered to maintain healthy ecosystem engagement." ||
		errs[0].Message != errs[0].Title || !strings.Contains(errs[0].ErrorData.Details, "healthy ecosystem") || errs[0].Href == "" ||
		st["pricing"] != nil {
		t.Errorf("failed %s", d.body)
	}
	evs, _ := ingest.Parse(d.body, time.Now())
	if len(evs) != 1 || evs[0].Type != sdk.TypeStatusFailed || len(evs[0].Status.Errors) != 1 || evs[0].Status.Errors[0].Code != 131049 {
		t.Errorf("parsed %+v", evs)
	}

	// Without errors a failure still says why.
	if err := fake.EmitStatus(wamid, "failed"); err != nil {
		t.Fatal(err)
	}
	_, st = decode(t, (<-got).body)
	if !bytes.Contains(st["errors"], []byte(`"code":131000`)) {
		t.Errorf("default failure %s", st["errors"])
	}
}

func TestEmitStatusBSUID(t *testing.T) {
	ts, got := hub(t, 200)
	fake := withHook(ts)
	defer fake.Close()
	wamid := wamidOf(t, send(t, fake, `{"messaging_product":"whatsapp","recipient":"BR.13491208655302741918","type":"text","text":{"body":"oi"}}`))
	_ = fake.EmitStatus(wamid, "delivered")
	_ = fake.EmitStatus(wamid, "failed")

	w, st := decode(t, (<-got).body)
	if st["recipient_id"] != nil || str(st["recipient_user_id"]) != "BR.13491208655302741918" ||
		len(w.Entry[0].Changes[0].Value.Contacts) != 1 || w.Entry[0].Changes[0].Value.Contacts[0]["user_id"] != "BR.13491208655302741918" {
		t.Errorf("delivered %+v %v", w, st)
	}
	w, st = decode(t, (<-got).body)
	if w.Entry[0].Changes[0].Value.Contacts != nil || str(st["recipient_user_id"]) == "" {
		t.Errorf("failed: contacts are omitted, the recipient stays: %+v", w)
	}
}

func TestStatusBodyEscapesNonASCII(t *testing.T) {
	ts, got := hub(t, 200)
	fake := withHook(ts)
	defer fake.Close()
	wamid := wamidOf(t, send(t, fake, `{"messaging_product":"whatsapp","to":"+1","biz_opaque_callback_data":"äöå 😀","text":{"body":"x"}}`))
	_ = fake.EmitStatus(wamid, "sent")
	d := <-got
	checkSignature(t, d)
	if !bytes.Contains(d.body, []byte(`"biz_opaque_callback_data":"\u00e4\u00f6\u00e5 \ud83d\ude00"`)) {
		t.Errorf("not escaped like Meta: %s", d.body)
	}
	_, st := decode(t, d.body)
	if str(st["biz_opaque_callback_data"]) != "äöå 😀" {
		t.Errorf("round trip %q", st["biz_opaque_callback_data"])
	}
}

func TestEmitStatusErrors(t *testing.T) {
	ts, got := hub(t, 500)
	fake := withHook(ts)
	defer fake.Close()
	if err := fake.EmitStatus("wamid.unknown", "sent"); err == nil {
		t.Error("unknown wamid accepted")
	}
	wamid := wamidOf(t, send(t, fake, text("+1", "x")))
	if err := fake.EmitStatus(wamid, "sent"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("hub 500: %v", err)
	}
	<-got
	if sts := fake.Statuses(); len(sts) != 1 || sts[0].HTTPStatus != 500 || sts[0].Err == "" {
		t.Errorf("%+v", sts)
	}
	// Without a webhook there is nowhere to post.
	plain := graphtest.NewServer()
	wamid = wamidOf(t, send(t, plain, text("+1", "x")))
	if err := plain.EmitStatus(wamid, "sent"); err == nil {
		t.Error("no webhook, no error")
	}
}

func TestAutoStatuses(t *testing.T) {
	ts, got := hub(t, 200)
	fake := withHook(ts, graphtest.WithAutoStatuses(0))
	w1 := wamidOf(t, send(t, fake, text("+1", "x")))
	w2 := wamidOf(t, send(t, fake, text("+2", "x")))
	per := map[string][]string{}
	for range 6 {
		d := <-got
		checkSignature(t, d)
		_, st := decode(t, d.body)
		per[str(st["id"])] = append(per[str(st["id"])], str(st["status"]))
	}
	fake.Close()
	for _, w := range []string{w1, w2} {
		if strings.Join(per[w], ",") != "sent,delivered,read" {
			t.Errorf("%s: %v", w, per[w])
		}
	}
	if n := len(fake.Statuses()); n != 6 {
		t.Errorf("%d statuses recorded", n)
	}
	// After Close nothing more is emitted.
	send(t, fake, text("+3", "x"))
	fake.Close()
	select {
	case d := <-got:
		t.Errorf("emitted after Close: %s", d.body)
	default:
	}
}

func TestAutoStatusesStopOnClose(t *testing.T) {
	ts, got := hub(t, 200)
	// An hour between steps: Close must not wait for it.
	fake := withHook(ts, graphtest.WithAutoStatuses(time.Hour))
	send(t, fake, text("+1", "x"))
	fake.Close()
	select {
	case d := <-got:
		t.Errorf("emitted: %s", d.body)
	default:
	}
}

func TestAsyncErrors(t *testing.T) {
	ts, got := hub(t, 200)
	fake := withHook(ts, graphtest.WithAsyncErrors(), graphtest.WithAutoStatuses(0))
	defer fake.Close()
	fake.CloseWindow("+16505551234")
	fake.MakeUndeliverable("+16505550000")

	a := send(t, fake, text("+16505551234", "x"))
	if a.status != 200 {
		t.Fatalf("accepted first, fails later: %d %s", a.status, a.body)
	}
	wamid := wamidOf(t, a)
	_, st := decode(t, (<-got).body)
	if str(st["id"]) != wamid || str(st["status"]) != "failed" || !bytes.Contains(st["errors"], []byte(`"code":131047`)) {
		t.Errorf("window: %v", st)
	}
	wamidOf(t, send(t, fake, template("+16505550000", "t")))
	_, st = decode(t, (<-got).body)
	if str(st["status"]) != "failed" || !bytes.Contains(st["errors"], []byte(`"code":131026`)) {
		t.Errorf("undeliverable: %v", st)
	}
	// Templates pass the closed window and get the normal statuses.
	wamidOf(t, send(t, fake, template("+16505551234", "t")))
	for _, want := range []string{"sent", "delivered", "read"} {
		if _, st := decode(t, (<-got).body); str(st["status"]) != want {
			t.Errorf("got %s, want %s", st["status"], want)
		}
	}
}
