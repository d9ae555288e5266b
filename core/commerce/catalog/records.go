// Package catalog holds the catalog side of the commerce context: products as sold (type, prices,
// bundle components, publication) and their versions per platform with semantic-version ordering.
//
// The *Record-like structs are persistence shapes; the rules (slugs, semver, latest per platform,
// price lookups) live in this package's functions and are table-tested.
package catalog

import "time"

// ProductType is what a product is sold as.
type ProductType string

const (
	TypePlugin     ProductType = "plugin"
	TypeSamplePack ProductType = "sample_pack"
	TypeBundle     ProductType = "bundle"
)

// Platform is the platform of a version's asset.
type Platform string

const (
	PlatformWin   Platform = "win"
	PlatformMac   Platform = "mac"
	PlatformLinux Platform = "linux"
	PlatformAll   Platform = "all" // cross-platform (sample packs)
)

// Price is a price in one currency, in minor units (cents).
type Price struct {
	Currency    string // ISO 4217, upper case
	AmountCents int64
}

// Product is a catalog product as stored. Slug is unique and never changes once orders reference it.
type Product struct {
	ID          string // prd_…
	Slug        string
	Name        string
	Description string
	Type        ProductType
	// Currency is the product's primary currency; Prices holds it and any other currency.
	Currency string
	Prices   []Price
	// Components are the slugs a bundle grants (plugins get a license each, sample packs an
	// entitlement). Empty for plugins and sample packs.
	Components []string
	Active     bool // published: visible in the public catalog and purchasable
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Version is one downloadable release of a product for one platform.
type Version struct {
	ID                 string // ver_…
	ProductID          string
	Version            string // semantic version, e.g. 1.2.3
	Platform           Platform
	ReleaseNotes       string
	MinProtocolVersion int // the lowest device protocol version this build speaks (1 today)
	// StorageKey names the asset in the ObjectStore; never shown publicly. "" = no asset yet.
	StorageKey string
	FileName   string // the name the download is saved as
	SizeBytes  int64
	SHA256     string // hex of the asset, when known
	Published  bool
	// IsLatest is kept by the service: true on the highest published version of (product,
	// platform), false on every other one.
	IsLatest  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}
