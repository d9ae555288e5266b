package objectstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/samplero/samplero/ports"
)

// S3Options configure an S3 store.
type S3Options struct {
	// Endpoint is the URL of an S3-compatible server (MinIO, R2, Ceph…); "" = AWS.
	Endpoint string
	Region   string
	Bucket   string
	// AccessKeyID and SecretAccessKey sign every request and every download link; both required.
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses the bucket as endpoint/bucket/key rather than bucket.endpoint/key (most
	// self-hosted servers want it).
	PathStyle bool
	// Clock is the signing time of download links; default the system clock. S3 checks links
	// against its own time, so only a clock that is close to it makes sense outside tests.
	Clock ports.Clock
	// SpoolDir is where an upload is written (and hashed) before it is sent; "" = os.TempDir().
	SpoolDir string
	// MaxAttempts is how often a call is tried, the SDK's retries included; 0 = the SDK default (3).
	MaxAttempts int
}

// S3 is the S3-compatible object store.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	spool   string
}

var _ ports.ObjectStore = (*S3)(nil)

// MaxS3ObjectSize is the largest object one PutObject stores (S3's single-request limit). The store
// does not upload in parts; larger objects are refused with OBJECT_TOO_LARGE.
const MaxS3ObjectSize int64 = 5 << 30

// sha256Meta is the user metadata (x-amz-meta-sha256) that keeps an object's SHA-256 in hex.
const sha256Meta = "sha256"

// NewS3 builds the client and checks that the bucket answers (HeadBucket), so a wrong endpoint,
// bucket or credentials are found at start rather than at the first upload.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	switch {
	case opts.Region == "":
		return nil, errors.New("objectstore: the S3 store needs a region")
	case opts.Bucket == "":
		return nil, errors.New("objectstore: the S3 store needs a bucket")
	case opts.AccessKeyID == "" || opts.SecretAccessKey == "":
		// Links are presigned with these keys: without them there is nothing to sign with.
		return nil, errors.New("objectstore: the S3 store needs an access key id and a secret access key")
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("objectstore: the S3 endpoint %q is not an http(s) URL", opts.Endpoint)
		}
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	creds := aws.Credentials{AccessKeyID: opts.AccessKeyID, SecretAccessKey: opts.SecretAccessKey, Source: "samplero configuration"}
	cfg := aws.Config{
		Region: opts.Region,
		Credentials: aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		})),
		RetryMaxAttempts: opts.MaxAttempts,
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// The SDK's default (checksums whenever supported, sent as aws-chunked trailers) is not
		// understood by every S3-compatible server; Put sends its own SHA-256 checksum instead.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	signer := v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }) // as the SDK's own S3 presigner
	presign := s3.NewPresignClient(client, func(po *s3.PresignOptions) {
		po.Presigner = clockPresigner{signer: signer, clock: opts.Clock}
	})
	spool := opts.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	st := &S3{client: client, presign: presign, bucket: opts.Bucket, spool: spool}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(opts.Bucket)}); err != nil {
		return nil, s3Error(err, "the S3 bucket does not answer: check the endpoint, region, bucket and credentials")
	}
	return st, nil
}

// clockPresigner signs download links at the store's clock rather than the SDK's wall clock, so the
// link's validity (X-Amz-Date + X-Amz-Expires) is the one the service computes from the same clock.
type clockPresigner struct {
	signer *v4.Signer
	clock  ports.Clock
}

func (p clockPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string,
	_ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.signer.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.clock.Now().UTC(), optFns...)
}

// Put spools the upload to a temporary file while hashing and measuring it, then sends it with one
// PutObject: a seekable body with its exact length (the SDK can sign and retry it), the SHA-256 as
// x-amz-checksum-sha256 (S3 refuses a body that does not match) and as metadata (Stat reads it back).
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (ports.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ports.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ports.ObjectInfo{}, unavailable("the upload was cancelled", err)
	}
	if size > MaxS3ObjectSize {
		return ports.ObjectInfo{}, tooLarge(MaxS3ObjectSize)
	}
	f, err := os.CreateTemp(s.spool, "samplero-upload-*")
	if err != nil {
		return ports.ObjectInfo{}, unavailable("the upload could not be spooled", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, h, err := copyChecked(ctx, f, r, size, MaxS3ObjectSize)
	if err != nil {
		return ports.ObjectInfo{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ports.ObjectInfo{}, unavailable("the upload could not be spooled", err)
	}
	sum := h.Sum(nil)
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(key),
		Body:           f,
		ContentLength:  aws.Int64(n),
		ContentType:    aws.String(contentType),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:       map[string]string{sha256Meta: hex.EncodeToString(sum)},
	})
	if err != nil {
		return ports.ObjectInfo{}, s3Error(err, "the object store did not take the upload")
	}
	return ports.ObjectInfo{Key: key, SizeBytes: n, SHA256: hex.EncodeToString(sum)}, nil
}

// Stat is HeadObject. The SHA-256 comes from the metadata Put wrote or, for an object uploaded by
// other means with a full-object SHA-256 checksum, from S3's checksum; otherwise it is "".
func (s *S3) Stat(ctx context.Context, key string) (ports.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ports.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return ports.ObjectInfo{}, notFound()
		}
		return ports.ObjectInfo{}, s3Error(err, "the object store is not available")
	}
	info := ports.ObjectInfo{Key: key, SizeBytes: aws.ToInt64(out.ContentLength)}
	if v := out.Metadata[sha256Meta]; isSHA256Hex(v) {
		info.SHA256 = v
	} else if out.ChecksumType == types.ChecksumTypeFullObject && out.ChecksumSHA256 != nil {
		if b, err := base64.StdEncoding.DecodeString(*out.ChecksumSHA256); err == nil && len(b) == 32 {
			info.SHA256 = hex.EncodeToString(b)
		}
	}
	return info, nil
}

// Delete is DeleteObject; a missing object is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil && httpStatus(err) != http.StatusNotFound {
		return s3Error(err, "the object store is not available")
	}
	return nil
}

// DownloadURL presigns a GetObject valid for ttl from the store's clock, whose answer carries
// Content-Disposition: attachment with fileName ("" = the key's last segment). The link is not
// checked against the object: while there is none, S3 answers it with 404.
func (s *S3) DownloadURL(ctx context.Context, key, fileName string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	name, err := downloadName(key, fileName)
	if err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket:                     aws.String(s.bucket),
		Key:                        aws.String(key),
		ResponseContentDisposition: aws.String(ContentDisposition(name)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s3Error(err, "the download link could not be signed")
	}
	return req.URL, nil
}

// httpStatus is the HTTP status of S3's answer in err, 0 when there was none.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// s3Error reports a failed S3 call as errs.Unavailable with a fixed message: the SDK's text (which
// names the endpoint and request, never the secret) stays in the cause, for logs only.
func s3Error(err error, message string) error {
	return unavailable(message, err)
}
