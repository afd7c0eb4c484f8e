/* kf_effect.c - e2e helper: sends one StageEffects to an actor's ROUTER (participant,
 * submitter) as the claimer would, waits for the EffectsReply and prints it.
 *   kf-effect ENDPOINT KIND COMPUTATION PROTOCOL ROLE STAGE [ERROR_MESSAGE]
 * KIND: set_params | confirm | fail | log.  Exit 0 if OUTCOME_OK, 1 otherwise, 2 on usage
 * or no reply within 60 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "duchy.pb-c.h"

int main(int argc, char **argv)
{
    if (argc < 7)
        return 2;
    int kind = strcmp(argv[2], "set_params") == 0 ? 1
               : strcmp(argv[2], "confirm") == 0  ? 2
               : strcmp(argv[2], "fail") == 0     ? 5
               : strcmp(argv[2], "log") == 0      ? 6
                                                  : 0;
    Halo__Internal__V1__StageEffects fx = HALO__INTERNAL__V1__STAGE_EFFECTS__INIT;
    fx.kind = kind;
    fx.computation_id = argv[3];
    fx.protocol = atoi(argv[4]);
    fx.role = atoi(argv[5]);
    fx.stage = atoi(argv[6]);
    fx.stage_name = (char *)"e2e";
    fx.attempt = 1;
    fx.error_code = (char *)"e2e";
    fx.error_message = argc > 7 ? argv[7] : (char *)"e2e";
    Halo__Internal__V1__ActorMessage m = HALO__INTERNAL__V1__ACTOR_MESSAGE__INIT;
    m.version = 1;
    m.request_id = (char *)"e2e-1";
    m.sender = (char *)"kf-effect";
    m.body_case = HALO__INTERNAL__V1__ACTOR_MESSAGE__BODY_STAGE_EFFECTS;
    m.stage_effects = &fx;
    uint8_t buf[4096];
    size_t n = halo__internal__v1__actor_message__pack(&m, buf);
    zsock_t *d = zsock_new_dealer(argv[1]);
    if (d == NULL)
        return 2;
    zframe_t *f = zframe_new(buf, n);
    zframe_send(&f, d, 0);
    zsock_set_rcvtimeo(d, 60000);
    zframe_t *r = zframe_recv(d);
    if (r == NULL) {
        zsock_destroy(&d);
        return 2;
    }
    Halo__Internal__V1__ActorMessage *rep =
        halo__internal__v1__actor_message__unpack(NULL, zframe_size(r), zframe_data(r));
    zframe_destroy(&r);
    zsock_destroy(&d);
    if (rep == NULL || rep->effects_reply == NULL || strcmp(rep->request_id, "e2e-1") != 0)
        return 2;
    int outcome = rep->effects_reply->outcome;
    printf("%d %s %s\n", outcome, rep->effects_reply->code, rep->effects_reply->message);
    halo__internal__v1__actor_message__free_unpacked(rep, NULL);
    return outcome == HALO__INTERNAL__V1__OUTCOME__OUTCOME_OK ? 0 : 1;
}
