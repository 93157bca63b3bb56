package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wahub/wahub/sdk/internal/pb"
)

// mediaChunk is how much of a file one gRPC message carries: large enough
// that a 100 MB document is 400 messages, small enough that neither side
// holds more than a few of them.
const mediaChunk = 256 << 10

// ---- plugin side ----

func (h *remoteHost) OpenMedia(ctx context.Context, id string) (MediaInfo, io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := h.client.OpenMedia(ctx, &pb.OpenMediaRequest{Id: id})
	if err != nil {
		cancel()
		return MediaInfo{}, nil, mediaError(err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		if err == io.EOF {
			err = errors.New("the hub ended the stream before the file's info")
		}
		return MediaInfo{}, nil, fmt.Errorf("open media %s: %w", id, mediaError(err))
	}
	if first.Info == nil {
		cancel()
		return MediaInfo{}, nil, fmt.Errorf("open media %s: the hub sent no info first", id)
	}
	return mediaInfoFromPB(first.Info), &mediaReader{recv: stream.Recv, buf: first.Data, cancel: cancel}, nil
}

func (h *remoteHost) PutMedia(ctx context.Context, m MediaUpload, r io.Reader) (MediaInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.client.PutMedia(ctx)
	if err != nil {
		return MediaInfo{}, fromStatus(err)
	}
	if err := stream.Send(&pb.MediaChunk{Info: &pb.MediaInfo{MimeType: m.MimeType, Filename: m.Filename, Size: m.Size}}); err != nil {
		return MediaInfo{}, putError(stream.CloseAndRecv, err)
	}
	for {
		// A buffer per chunk: gRPC may still hold a sent message (stats
		// handlers read it lazily), so one is never reused.
		buf := make([]byte, mediaChunk)
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&pb.MediaChunk{Data: buf[:n]}); err != nil {
				// The hub stopped reading (a refusal): its answer says why.
				return MediaInfo{}, putError(stream.CloseAndRecv, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return MediaInfo{}, fmt.Errorf("put media: read the file: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return MediaInfo{}, fromStatus(err)
	}
	return putResult(resp)
}

// putError prefers the hub's answer (a refusal) over the send error that
// revealed it.
func putError(closeAndRecv func() (*pb.PutMediaResponse, error), sendErr error) error {
	resp, err := closeAndRecv()
	if err == nil {
		_, err = putResult(resp)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return fromStatus(err)
	}
	return fromStatus(sendErr)
}

func putResult(resp *pb.PutMediaResponse) (MediaInfo, error) {
	if resp.RefusedCode != "" {
		return MediaInfo{}, &RefusedError{Code: resp.RefusedCode, Message: resp.RefusedMessage}
	}
	if resp.Info == nil {
		return MediaInfo{}, errors.New("put media: the hub answered without the file's info")
	}
	return mediaInfoFromPB(resp.Info), nil
}

// mediaReader reads a file's chunks as the hub streams them.
type mediaReader struct {
	recv   func() (*pb.MediaChunk, error)
	buf    []byte
	err    error
	cancel context.CancelFunc
}

func (m *mediaReader) Read(p []byte) (int, error) {
	for len(m.buf) == 0 {
		if m.err != nil {
			return 0, m.err
		}
		chunk, err := m.recv()
		if err == io.EOF {
			m.err = io.EOF
			continue
		}
		if err != nil {
			m.err = fmt.Errorf("read media: %w", mediaError(err))
			continue
		}
		m.buf = chunk.Data
	}
	n := copy(p, m.buf)
	m.buf = m.buf[n:]
	return n, nil
}

// Close ends the stream; the hub stops sending.
func (m *mediaReader) Close() error {
	m.cancel()
	if m.err == nil {
		m.err = errors.New("read media: reader closed")
	}
	return nil
}

func mediaError(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.NotFound {
		return fmt.Errorf("%w: %s", ErrMediaUnavailable, st.Message())
	}
	return fromStatus(err)
}

// ---- host side ----

func (s *hostServer) OpenMedia(req *pb.OpenMediaRequest, stream pb.Host_OpenMediaServer) error {
	info, r, err := s.host.OpenMedia(stream.Context(), req.Id)
	if errors.Is(err, ErrMediaUnavailable) {
		return status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return toStatus(err)
	}
	defer r.Close()
	if err := stream.Send(&pb.MediaChunk{Info: mediaInfoToPB(info)}); err != nil {
		return err
	}
	for {
		buf := make([]byte, mediaChunk) // not reused: see PutMedia
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&pb.MediaChunk{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return toStatus(fmt.Errorf("read media %s: %w", req.Id, rerr))
		}
	}
}

func (s *hostServer) PutMedia(stream pb.Host_PutMediaServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.Info == nil {
		return status.Error(codes.InvalidArgument, "put media: the first chunk carries no info")
	}
	m := MediaUpload{MimeType: first.Info.MimeType, Filename: first.Info.Filename, Size: first.Info.Size}
	r := &chunkReader{recv: stream.Recv, buf: first.Data}
	info, err := s.host.PutMedia(stream.Context(), m, r)
	var refused *RefusedError
	if errors.As(err, &refused) {
		return stream.SendAndClose(&pb.PutMediaResponse{RefusedCode: refused.Code, RefusedMessage: refused.Message})
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.PutMediaResponse{Info: mediaInfoToPB(info)})
}

// chunkReader reads an uploaded file's chunks as the plugin sends them.
type chunkReader struct {
	recv func() (*pb.MediaChunk, error)
	buf  []byte
	err  error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		chunk, err := c.recv()
		if err != nil {
			c.err = err
			continue
		}
		c.buf = chunk.Data
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func mediaInfoToPB(m MediaInfo) *pb.MediaInfo {
	return &pb.MediaInfo{Id: m.ID, MimeType: m.MimeType, Sha256: m.SHA256, Size: m.Size, Filename: m.Filename}
}

func mediaInfoFromPB(m *pb.MediaInfo) MediaInfo {
	return MediaInfo{ID: m.Id, MimeType: m.MimeType, SHA256: m.Sha256, Size: m.Size, Filename: m.Filename}
}
