package catalog

// Stable error codes of the catalog (products, versions, assets). They live in the aggregate package
// so that the HTTP adapter (which may import aggregates but never core services) and the tests can
// refer to them. The comment after each code is the errs.Kind it is returned with.
const (
	CodeProductNotFound    = "PRODUCT_NOT_FOUND"    // errs.NotFound: unknown slug, or inactive on a public read
	CodeProductInUse       = "PRODUCT_IN_USE"       // errs.Conflict: orders or a bundle reference it
	CodeSlugTaken          = "SLUG_TAKEN"           // errs.Conflict: another product has this slug
	CodeInvalidSlug        = "INVALID_SLUG"         // errs.Invalid
	CodeInvalidProductType = "INVALID_PRODUCT_TYPE" // errs.Invalid: not plugin, sample_pack or bundle
	CodeInvalidVersion     = "INVALID_VERSION"      // errs.Invalid: not a semantic version, or a bad field of one
	CodeVersionExists      = "VERSION_EXISTS"       // errs.Conflict: same (product, platform, version precedence)
	CodeVersionNotFound    = "VERSION_NOT_FOUND"    // errs.NotFound: unknown id, or a version of another product
	CodeVersionNoAsset     = "VERSION_NO_ASSET"     // errs.Invalid: publishing a version that has no file
	CodeInvalidPlatform    = "INVALID_PLATFORM"     // errs.Invalid: not win, mac, linux or all
	CodeInvalidPrice       = "INVALID_PRICE"        // errs.Invalid: negative, or too large
	CodeInvalidCurrency    = "INVALID_CURRENCY"     // errs.Invalid: not three letters, or given twice
	CodeInvalidComponents  = "INVALID_COMPONENTS"   // errs.Invalid: bundle components missing, unknown, bundles, or on a non-bundle
	CodeInvalidFileName    = "INVALID_FILE_NAME"    // errs.Invalid: nothing usable is left of an asset's file name
)
