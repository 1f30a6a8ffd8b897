/* web/qr: the QR code a user scans to enrol an authenticator app, drawn as
 * SVG from libqrencode's module matrix.  SVG shown through <img> runs no
 * script and scales to any screen; one path of unit squares keeps it small. */
#include "web/web.h"

#include <qrencode.h>

#define QUIET_ZONE 4   /* modules of white border the standard asks for */

char *mv_web_qr_svg(const char *text)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (!qr)
		return NULL;
	int size = qr->width + 2 * QUIET_ZONE;
	GString *svg = g_string_new(NULL);
	g_string_append_printf(svg,
	                       "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\""
	                       " shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
	                       "<path fill=\"#000\" d=\"",
	                       size, size, size * 6, size * 6, size, size);
	for (int y = 0; y < qr->width; y++)
		for (int x = 0; x < qr->width; x++)
			if (qr->data[y * qr->width + x] & 1)
				g_string_append_printf(svg, "M%d %dh1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
	g_string_append(svg, "\"/></svg>");
	QRcode_free(qr);
	return g_string_free(svg, FALSE);
}
