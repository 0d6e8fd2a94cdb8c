
/*
 * Omni gateway module: what its files share.
 */


#ifndef _NGX_HTTP_OMNI_MODULE_H_INCLUDED_
#define _NGX_HTTP_OMNI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_OMNI_VERSION  "0.1.0"


typedef struct {
    ngx_uint_t                 status_locations;
} ngx_http_omni_main_conf_t;


typedef struct {
    ngx_flag_t                 status;
} ngx_http_omni_loc_conf_t;


char *ngx_http_omni_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_omni_status_handler(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_omni_module;


#endif /* _NGX_HTTP_OMNI_MODULE_H_INCLUDED_ */
