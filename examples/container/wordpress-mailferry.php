<?php
/*
 * Plugin Name: mailferry relay
 * Description: Sends WordPress mail (wp_mail) over SMTP to the mailferry service instead of PHP mail().
 *
 * A must-use plugin: compose.yaml mounts it as wp-content/mu-plugins/mailferry.php. mailferry
 * accepts mail without AUTH only from its trusted network (the compose network `mail`), so no
 * password lives in WordPress; mailferry holds the provider's credentials and retries.
 */

add_action('phpmailer_init', function ($phpmailer) {
    $phpmailer->isSMTP();
    $phpmailer->Host = getenv('MAILFERRY_SMTP_HOST') ?: 'mailferry';
    $phpmailer->Port = (int) (getenv('MAILFERRY_SMTP_PORT') ?: 25);
    $phpmailer->SMTPAuth = false;
    // Plain SMTP on a private network: do not try STARTTLS, which the listener does not offer.
    $phpmailer->SMTPSecure = '';
    $phpmailer->SMTPAutoTLS = false;
    $phpmailer->Timeout = 30;
});
