output "acr_login_server" {
  description = "Registry for `defectflow build-image --push` (the training flow pushes <this>/<model name>:v<N>, e.g. defectflow-classifier:v3)."
  value       = azurerm_container_registry.main.login_server
}

output "aks_name" {
  description = "`az aks get-credentials -g <resource group> -n <this>` then `kubectl apply -k infra/k8s/base`."
  value       = azurerm_kubernetes_cluster.main.name
}

output "resource_group" {
  value = azurerm_resource_group.main.name
}

output "storage_account" {
  description = "Holds the inspection-images, mlflow-artifacts and dvc containers."
  value       = azurerm_storage_account.main.name
}

output "postgres_host" {
  description = "Private FQDN of the PostgreSQL server (results database: defectflow_results; MLflow: mlflow)."
  value       = azurerm_postgresql_flexible_server.main.fqdn
}

output "results_url" {
  description = "SQLAlchemy URL for the `results-url` key of the Kubernetes Secret defectflow-secrets."
  value       = "postgresql+psycopg2://${var.postgres_admin}:${random_password.postgres.result}@${azurerm_postgresql_flexible_server.main.fqdn}:5432/defectflow_results?sslmode=require"
  sensitive   = true
}
