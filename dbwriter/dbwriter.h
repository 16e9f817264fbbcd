/*
 * The dbwriter process: receives records from workers over the
 * master-created Unix socket and owns every PostgreSQL connection.
 */
#ifndef WSGATE_DBWRITER_H
#define WSGATE_DBWRITER_H

#include "config.h"

/*
 * Run the dbwriter until it is told to stop.  `ipc_fd` is the listening
 * SOCK_SEQPACKET socket workers connect to.  Returns the exit status.
 */
int	dbwriter_main(struct config *cfg, int ipc_fd, int slot,
	    unsigned int generation);

#endif /* WSGATE_DBWRITER_H */
