package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

func newSendCmd(g *globals) *cobra.Command {
	var (
		target, to, from, text, template, language, key, status string
		media, mediaType, caption, filename                     string
	)
	cmd := &cobra.Command{
		Use:   "send --to NUMBER (--text TEXT | --template NAME --language CODE | --media ID|URL [--caption C]) [--key KEY]",
		Short: "Send a WhatsApp message through the running hub, or show one (--status ID)",
		Long: "Queue a message through the admin API (POST /api/v1/messages). The hub checks WhatsApp's rules\n" +
			"first: a customer who opted out, a closed 24-hour window (only templates then), a blocked country\n" +
			"or an unknown business number is refused with its code; so is a file WhatsApp would refuse (--media:\n" +
			"an id POST /api/v1/media returned, or an https link the hub fetches). --key makes a retried command send once.\n" +
			"--status ID prints a message's state and history instead.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			if status != "" {
				var rec store.OutboundRecord
				if err := cl.call("GET", "/api/v1/messages/"+status, nil, &rec); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s  %s  to %s  wamid %s\n", rec.ID, rec.State, rec.To, rec.WAMID)
				for _, h := range rec.History {
					line := fmt.Sprintf("  %s  %s", h.At.Format("2006-01-02T15:04:05Z07:00"), h.State)
					if h.ErrorCode != "" {
						line += "  " + h.ErrorCode + ": " + h.Error
					}
					fmt.Fprintln(g.stdout, line)
				}
				return nil
			}
			if to == "" {
				return usageErr(errors.New("send: --to is required (the customer's number or user id)"))
			}
			msg := sdk.OutboundMessage{To: to, PhoneNumberID: from, Text: text, IdempotencyKey: key}
			if media == "" && (caption != "" || mediaType != "" || filename != "") {
				return usageErr(errors.New("send: --caption, --type and --filename go with --media"))
			}
			switch {
			case media != "" && (text != "" || template != ""):
				return usageErr(errors.New("send: give one of --text, --template and --media"))
			case media != "":
				msg.Media = &sdk.OutboundMedia{Type: mediaType, Caption: caption, Filename: filename}
				if strings.HasPrefix(media, "https://") || strings.HasPrefix(media, "http://") {
					msg.Media.URL = media
				} else {
					msg.Media.ID = media
				}
			case template != "" && text != "":
				return usageErr(errors.New("send: give --text or --template, not both"))
			case template != "":
				if language == "" {
					return usageErr(errors.New("send: --template needs --language (e.g. pt_BR)"))
				}
				msg.Template = &sdk.Template{Name: template, Language: language}
			case text == "":
				return usageErr(errors.New("send: give --text TEXT, --template NAME --language CODE or --media ID|URL"))
			}
			var out struct {
				ID        string `json:"id"`
				State     string `json:"state"`
				Duplicate bool   `json:"duplicate"`
			}
			if err := cl.call("POST", "/api/v1/messages", msg, &out); err != nil {
				return err
			}
			note := ""
			if out.Duplicate {
				note = " (already queued with this key: not sent again)"
			}
			fmt.Fprintf(g.stdout, "%s %s%s\n", out.ID, out.State, note)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "", "the hub's base URL (default: the configured listen address)")
	f.StringVar(&to, "to", "", "the customer: wa_id (phone number) or user_id")
	f.StringVar(&from, "from", "", "business phone_number_id to send from (default: the one the customer last wrote to)")
	f.StringVar(&text, "text", "", "free-form text (only within the 24-hour window)")
	f.StringVar(&template, "template", "", "approved template name")
	f.StringVar(&language, "language", "", "template language code, e.g. pt_BR")
	f.StringVar(&media, "media", "", "a file to send: an id from POST /api/v1/media, or an https link")
	f.StringVar(&mediaType, "type", "", "media type: image, audio, video, document or sticker (default: from the file's MIME type)")
	f.StringVar(&caption, "caption", "", "media caption (image, video, document)")
	f.StringVar(&filename, "filename", "", "the name a document is shown with (default: the stored file's)")
	f.StringVar(&key, "key", "", "idempotency key: the same key never sends twice")
	f.StringVar(&status, "status", "", "show the message with this id instead of sending")
	return cmd
}
