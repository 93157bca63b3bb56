package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// The connector streams files: moving one twice the size the fake keeps
// in memory (slacktest.MaxKeptBytes, so that the fake holds only its
// digest) allocates a small fraction of its size per operation (B/op),
// and its throughput is compared with a plain transfer of the same bytes
// to the same fake in the same run:
//
//	go test -run '^$' -bench Media -benchmem ./plugins/slack/
const benchFileSize = 2 * slacktest.MaxKeptBytes

// streamHost is a FakeHost whose PutMedia reads the file through a
// digest instead of keeping it, as the hub's media store writes it to
// disk: the benchmark then measures the connector, not the fake host.
type streamHost struct {
	*sdktest.FakeHost
	puts int
}

func (h *streamHost) PutMedia(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	d := sha256.New()
	n, err := io.Copy(d, r)
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	h.puts++
	return sdk.MediaInfo{ID: "med_" + hex.EncodeToString(d.Sum(nil))[:24], MimeType: m.MimeType, Filename: m.Filename, Size: n}, nil
}

type benchConn struct {
	c    *connector
	fake *slacktest.Server
	base string
	host *streamHost
	root slacktest.Message
}

func newBenchConn(b *testing.B) *benchConn {
	b.Helper()
	fake := slacktest.NewServer(slacktest.WithClock(clock))
	srv := sdktest.Serve(b, fake)
	bc := &benchConn{fake: fake, base: srv.URL + "/api/", host: &streamHost{FakeHost: sdktest.NewFakeHost()}}
	bc.host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{ID: "msg_" + m.IdempotencyKey}, nil
	}
	bc.c = New().(*connector)
	bc.c.now = clock
	if err := bc.c.Configure(context.Background(), sdk.Config{Name: "slack", Raw: configJSON(b, bc.base, nil)}, bc.host); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bc.c.With(func(i *instance) { i.Close() }) })
	bc.deliver(b, inbound("a1", ana, "support", "Olá"))
	bc.root = fake.Roots(defaultChan)[0]
	return bc
}

func (bc *benchConn) deliver(b *testing.B, ev sdk.Event) {
	if res := bc.c.Deliver(context.Background(), []sdk.Event{ev}); res[0].Outcome != sdk.Delivered {
		b.Fatalf("%s: %s", res[0].Outcome, res[0].Error)
	}
}

func BenchmarkMediaInbound(b *testing.B) {
	data := sample("%PDF-1.7\n", benchFileSize, 9)
	b.Run("plain-copy", func(b *testing.B) {
		bc := newBenchConn(b)
		api := slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(bc.base))
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			up, err := api.GetUploadURLExternalContext(context.Background(), slackapi.GetUploadURLExternalParameters{FileName: "x.pdf", FileSize: len(data)})
			if err != nil {
				b.Fatal(err)
			}
			resp, err := http.Post(up.UploadURL, "application/octet-stream", bytes.NewReader(data))
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(err, resp)
			}
			resp.Body.Close()
		}
	})
	b.Run("connector", func(b *testing.B) {
		bc := newBenchConn(b)
		bc.host.AddMedia(sdk.MediaInfo{ID: "m-big", MimeType: "application/pdf"}, data)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			bc.deliver(b, mediaEvent("ev-big-"+strconv.Itoa(i), sdk.MediaDocument, sdk.Media{ID: "m-big", MimeType: "application/pdf", Filename: "big.pdf"}, ""))
		}
		b.StopTimer()
		if f := bc.fake.Files(); f[len(f)-1].SHA256 != sum(data) {
			b.Fatal("the fake got other bytes")
		}
	})
}

func BenchmarkMediaOutbound(b *testing.B) {
	data := sample("%PDF-1.7\n", benchFileSize, 10)
	b.Run("plain-copy", func(b *testing.B) {
		bc := newBenchConn(b)
		f := bc.fake.AddFile("big.pdf", "application/pdf", "U0AGENT", data)
		api := slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(bc.base))
		info, _, _, err := api.GetFileInfo(f.ID, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := api.GetFileContext(context.Background(), info.URLPrivateDownload, sha256.New()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("connector", func(b *testing.B) {
		bc := newBenchConn(b)
		f := bc.fake.AddFile("big.pdf", "application/pdf", "U0AGENT", data)
		obj := bc.fake.FileObject(bc.base, f.ID, false)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			id := fmt.Sprintf("EvBig%d", i)
			body := slacktest.EventCallback(id, fixedNow, slacktest.MessageEvent{
				User: "U0AGENT", SubType: "file_share", TS: fmt.Sprintf("1795521601.%06d", i), ThreadTS: bc.root.TS, Channel: defaultChan, Files: []json.RawMessage{obj},
			})
			resp, err := bc.c.HandleHook(context.Background(), &sdk.HookRequest{Method: http.MethodPost, Header: slacktest.SignedEvent(secret, fixedNow, body), Body: body})
			if err != nil || resp.Status != http.StatusOK {
				b.Fatal(err, resp)
			}
			bc.c.settings().jobs.wg.Wait()
		}
		b.StopTimer()
		if bc.host.puts != i || len(bc.host.Sent()) != i {
			b.Fatalf("%d stored, %d sent of %d", bc.host.puts, len(bc.host.Sent()), i)
		}
	})
}
