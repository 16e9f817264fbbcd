/*
 * Admin listener endpoints (PROTOCOL.md section 6).
 */
#ifndef WSGATE_ADMIN_H
#define WSGATE_ADMIN_H

#include "conn.h"

/* Answer a parsed request on the admin listener. */
void	admin_handle(struct conn *);

#endif /* WSGATE_ADMIN_H */
