package dev.vqguard.registry;

import java.util.List;

import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * The registry's Quarkus extension apicurio-common-app-components-config-index publishes its
 * runtime jar on Maven Central but not the "-deployment" jar Quarkus needs at build time; that
 * build step only lists the @Dynamic properties (those an admin may change at run time through
 * /apis/registry/v2/admin/config). This build leaves the extension out (pom.xml) and supplies the
 * bean with an empty list: every property keeps its static value (application.properties,
 * environment), which is all a test registry needs.
 */
public class DynamicConfigList {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
