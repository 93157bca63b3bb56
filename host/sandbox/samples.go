package sandbox

import (
	"embed"

	"github.com/wahub/wahub/host/graph/graphtest"
)

// samples are the files behind the media ids of the sample webhooks
// (testdata/whatsapp/image.json, audio_voice.json, document.json): the
// sandbox's Graph fake serves them, so the whole media path works with no
// account anywhere. The webhooks' sha256 are these files' digests.
//
//go:embed samples/*
var sampleFiles embed.FS

// Sample is one file of the sample set.
type Sample struct {
	MediaID  string
	MimeType string
	Filename string // as the webhook names it (documents)
	File     string // in samples/
}

// Samples are the sample webhooks' files: a photo, a voice note, a PDF.
var Samples = []Sample{
	{MediaID: "1003383421387256", MimeType: "image/jpeg", File: "produto.jpg"},
	{MediaID: "1476281743600112", MimeType: "audio/ogg; codecs=opus", File: "mensagem_de_voz.ogg"},
	{MediaID: "1130471592211848", MimeType: "application/pdf", Filename: "comprovante_pix_novembro.pdf", File: "comprovante_pix_novembro.pdf"},
}

// Bytes returns the sample's file.
func (s Sample) Bytes() []byte {
	b, err := sampleFiles.ReadFile("samples/" + s.File)
	if err != nil {
		panic("sandbox: sample " + s.File + " is not embedded: " + err.Error())
	}
	return b
}

// AddSamples gives a Graph fake the sample files under their media ids.
func AddSamples(g *graphtest.Server) {
	for _, s := range Samples {
		g.AddMedia(s.MediaID, s.MimeType, s.Filename, s.Bytes())
	}
}
