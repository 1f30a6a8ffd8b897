/* web/assets: the page's static files, embedded into the binary at build
 * time by tools/embed_assets.py (one generated C file), so that the server
 * needs nothing installed beside it and always serves the bytes it was
 * built with. */
#ifndef MV_WEB_ASSETS_H
#define MV_WEB_ASSETS_H

#include <stddef.h>

typedef struct mv_web_asset {
	const char *path;             /* relative to src/web/assets: "index.html", "js/main.js" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
	const unsigned char *gzip;    /* NULL when compressing gains nothing */
	size_t gzip_len;
	const char *etag;             /* quoted, as the header carries it */
} mv_web_asset;

/* Terminated by an entry with path NULL. */
extern const mv_web_asset mv_web_assets[];

#endif
