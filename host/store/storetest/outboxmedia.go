package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// testMediaUploadStates walks a media message through the outbox: the
// upload recorded before the send, a hub stopping while uploading (queued
// again) and after the upload (the recorded id kept), and while sending
// (unknown, as any message).
func testMediaUploadStates(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	rec, _, err := s.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511900000001", PhoneNumberID: "pn1",
		Media: &sdk.OutboundMedia{ID: "med_1", Type: sdk.MediaImage, Caption: "olha"}})
	if err != nil {
		t.Fatal(err)
	}
	state := func(want string) store.OutboundRecord {
		t.Helper()
		r, err := s.Outbound(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != want {
			t.Fatalf("state %s, want %s", r.State, want)
		}
		return r
	}
	mustOK := func(what string, ok bool, err error, want bool) {
		t.Helper()
		if err != nil || ok != want {
			t.Fatalf("%s: %v %v, want %v", what, ok, err, want)
		}
	}
	ok, err := s.MarkUploading(ctx, rec.ID)
	mustOK("mark uploading", ok, err, true)
	state(store.OutUploading)
	ok, err = s.MarkUploading(ctx, rec.ID)
	mustOK("mark uploading twice", ok, err, false)
	ok, err = s.MarkSending(ctx, rec.ID)
	mustOK("mark an uploading message sending", ok, err, false)

	// Stopped while uploading: nothing was sent, it is queued again.
	n, err := s.RecoverSending(ctx)
	if err != nil || n != 0 {
		t.Fatalf("recover: %d unknown, %v; want 0", n, err)
	}
	if r := state(store.OutQueued); r.Upload != nil {
		t.Fatalf("upload %+v before any was recorded", r.Upload)
	}
	ok, err = s.RecordUpload(ctx, rec.ID, store.GraphUpload{GraphID: "1"})
	mustOK("record an upload of a queued message", ok, err, false)

	ok, err = s.MarkUploading(ctx, rec.ID)
	mustOK("mark uploading again", ok, err, true)
	up := store.GraphUpload{GraphID: "1037543291543636", SHA256: "9f86d081", MimeType: "image/jpeg", Size: 1234, At: t0}
	ok, err = s.RecordUpload(ctx, rec.ID, up)
	mustOK("record the upload", ok, err, true)
	r := state(store.OutQueued)
	if r.Upload == nil || *r.Upload != up || r.Attempts != 2 {
		t.Fatalf("upload %+v attempts %d, want %+v after 2", r.Upload, r.Attempts, up)
	}
	due, err := s.DueOutbound(ctx, t0, 10, nil)
	if err != nil || len(due) != 1 || due[0].Upload == nil || *due[0].Upload != up || due[0].Request.Media.Caption != "olha" {
		t.Fatalf("due %+v, %v", due, err)
	}
	// Stopped after the upload: the id stays, nothing to recover.
	if n, err := s.RecoverSending(ctx); err != nil || n != 0 {
		t.Fatalf("recover: %d, %v", n, err)
	}
	if r := state(store.OutQueued); r.Upload == nil || r.Upload.GraphID != up.GraphID {
		t.Fatal("the recorded upload was lost")
	}
	// A send that is deferred keeps it too.
	ok, err = s.MarkSending(ctx, rec.ID)
	mustOK("mark sending", ok, err, true)
	if err := s.DeferOutbound(ctx, rec.ID, rec.To, t0, "130429", "throttled"); err != nil {
		t.Fatal(err)
	}
	if r := state(store.OutQueued); r.Upload == nil {
		t.Fatal("deferring lost the upload")
	}
	// Stopped while sending: unknown, as any message.
	ok, err = s.MarkSending(ctx, rec.ID)
	mustOK("mark sending again", ok, err, true)
	if n, err := s.RecoverSending(ctx); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v; want 1 unknown", n, err)
	}
	var steps []string
	for _, h := range state(store.OutUnknown).History {
		steps = append(steps, h.State)
	}
	want := "queued,queued,uploaded,retry,unknown"
	if got := strings.Join(steps, ","); got != want {
		t.Errorf("history %s, want %s", got, want)
	}
}
