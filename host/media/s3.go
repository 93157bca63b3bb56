package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options name an S3-compatible bucket (media.s3).
type S3Options struct {
	// Endpoint is host:port (TLS), or an http:// or https:// URL.
	Endpoint        string
	Bucket          string
	Region          string
	Prefix          string // before every key, e.g. "wahub/"
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses endpoint/bucket/key (MinIO, most self-hosted
	// servers) rather than bucket.endpoint/key.
	PathStyle bool
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// s3PartSize is the part of a multipart upload minio-go buffers at a
// time: files above it go up in parts, never whole.
const s3PartSize = 16 << 20

// S3 keeps files in a bucket several hubs share, one object per content
// key (prefix + two hex digits + "/" + key), through minio-go.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string
	name   string
}

// NewS3 connects to the bucket and checks that it exists.
func NewS3(o S3Options) (*S3, error) {
	host, secure := o.Endpoint, true
	if strings.Contains(o.Endpoint, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("media.s3.endpoint: %q is not host:port or a URL", o.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if o.AccessKeyID != "" {
		creds = credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, "")
	} else {
		// The usual places: AWS_* or MINIO_* variables, then the instance's role.
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{}})
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: o.Region, BucketLookup: lookup, Transport: o.Transport})
	if err != nil {
		return nil, fmt.Errorf("media.s3: %w", err)
	}
	s := &S3{c: c, bucket: o.Bucket, prefix: o.Prefix, name: "s3 bucket " + o.Bucket + " at " + host}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("media.s3: cannot reach bucket %q at %s: %w (check media.s3.endpoint, the credentials and media.s3.path_style)", o.Bucket, host, err)
	}
	if !ok {
		return nil, fmt.Errorf("media.s3.bucket: bucket %q does not exist at %s; create it (the hub does not create buckets)", o.Bucket, host)
	}
	return s, nil
}

func (s *S3) String() string { return s.name }

func (s *S3) key(key string) string { return s.prefix + key[:2] + "/" + key }

func notFound(err error) bool {
	var e minio.ErrorResponse
	if errors.As(err, &e) {
		return e.Code == "NoSuchKey" || e.StatusCode == http.StatusNotFound
	}
	return false
}

func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.c.PutObject(ctx, s.bucket, s.key(key), r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: s3PartSize, NumThreads: 2})
	if err != nil {
		return fmt.Errorf("media: put %s into %s: %w", key, s.name, err)
	}
	return nil
}

func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.key(key), minio.GetObjectOptions{})
	if err == nil {
		// GetObject is lazy; Stat makes the request, so a missing
		// object is found here and not at the first Read.
		_, err = obj.Stat()
	}
	if notFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: open %s in %s: %w", key, s.name, err)
	}
	return obj, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, s.key(key), minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("media: delete %s from %s: %w", key, s.name, err)
	}
	return nil
}

func (s *S3) Has(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	_, err := s.c.StatObject(ctx, s.bucket, s.key(key), minio.StatObjectOptions{})
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("media: %s: %w", s.name, err)
	}
	return true, nil
}
